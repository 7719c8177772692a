"""`aggregator serve`: the web pages over the stored stories, search, the digest archive and
the feeds' health, and the operator endpoints; beside the CLI and the scheduler, above core.

access: who may ask (loopback, the token); server: the routes (Starlette) and the server
(uvicorn); metrics: /metrics (prometheus_client). Nothing here imports storage or a part.
"""
