"""The HTTP API: FastAPI routers over the same library functions the CLI calls."""
