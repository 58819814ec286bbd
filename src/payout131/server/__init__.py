"""The HTTP server: the signed partner API, the widget's API, metrics, one ASGI app."""
