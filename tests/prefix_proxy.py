"""A reverse proxy that serves an upstream under a path prefix and strips it, as nginx's
``location /bank/ { proxy_pass http://upstream/; }`` does (docs/operations.md), adding
``X-Forwarded-For`` and ``X-Forwarded-Proto``. Real HTTP both ways, for tests."""

from __future__ import annotations

from typing import Any

import httpx

_HOP = {
    b"host",
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"content-length",
    b"content-encoding",  # httpx hands the body decoded
}


def prefix_proxy(prefix: str, upstream: str, proto: str = "http") -> Any:
    """An ASGI app forwarding ``{prefix}/…`` to ``{upstream}/…``; anything else is 404.
    ``proto``: the scheme it tells upstream the client used (``https``: as a proxy that
    ends TLS does)."""
    client = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if not (path == prefix or path.startswith(prefix + "/")):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not proxied"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        headers += [
            (b"x-forwarded-for", scope["client"][0].encode()),
            (b"x-forwarded-proto", proto.encode()),
        ]
        query = scope.get("query_string", b"").decode()
        target = (path[len(prefix) :] or "/") + (f"?{query}" if query else "")
        answer = await client.request(scope["method"], target, headers=headers, content=body)
        out = [
            (k.encode(), v.encode()) for k, v in answer.headers.items() if k.encode() not in _HOP
        ]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": answer.content})

    return app
