"""The digest stage: select a window of stories, render it (html, text, json), deliver it."""
