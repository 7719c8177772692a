"""The alert stage: delivering one watch's alert on one channel (email, webhook, command)."""
