"""The HTTP layer: the ASGI app and its lifespan, the hot endpoints, SSE, write coalescing, the uvicorn
protocol and server, and the policy watcher of a running app.

May import every package below it; only ``gateway.cli.main`` imports it."""
