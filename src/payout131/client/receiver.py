"""``WebhookReceiver``: a small ASGI app that takes the bank's webhooks for a partner.

Route it in any ASGI framework, or serve it alone::

    receiver = WebhookReceiver(
        bank_public_key="bank131.pub.pem",
        handlers={"ready_to_confirm": on_ready, "payment_finished": on_finished},
    )
    app = Starlette(routes=receiver.routes("/bank131/webhook"))

``routes`` answers at the path with and without a trailing slash. (A Starlette ``Mount``
would answer the path without the slash with a redirect, which the bank does not follow.)

What it answers, and what the bank does then:

===============================================  ======  ================================
situation                                        answer  the bank
===============================================  ======  ================================
the handler returned                             200     stops
already handled (same ``Webhook-Id``, or the     200     stops; the handler is not called
same bytes when the header is absent)
no handler for the event type                    200     stops
the handler raised                               500     retries later
signed, but not a JSON event                     400     retries until its horizon
missing or bad ``X-PARTNER-SIGN``                401     retries until its horizon: check
                                                         ``bank_public_key``
not a POST / body over ``max_body`` bytes        405/413
===============================================  ======  ================================

The signature is checked before anything else, so a forged request can neither reach a
handler nor mark an id as handled. An id is remembered only after its handler returned.
Handlers may be plain functions (run in a worker thread) or ``async`` functions. The default
dedupe store is in memory and forgets on restart: handlers should be idempotent anyway, and
a deployment with several processes can pass a shared store implementing :class:`Dedupe`.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

import anyio.to_thread
import msgspec

from payout131.client.config import BankKeySource, read_public_keys
from payout131.client.errors import SignatureError, WebhookError
from payout131.client.webhooks import Event, verify_and_parse

__all__ = ["Dedupe", "Handler", "MemoryDedupe", "WebhookReceiver"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Any], object]
"""Called with the event (an ``Event`` subclass); may be ``async``."""


class Dedupe(Protocol):
    """Where handled webhook ids are kept; either method may also be ``async``."""

    def seen(self, webhook_id: str) -> bool | Awaitable[bool]: ...

    def remember(self, webhook_id: str) -> Awaitable[None] | None: ...


class MemoryDedupe:
    """The ``maxsize`` most recently handled ids, in memory, least recently seen evicted."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._maxsize = maxsize

    def seen(self, webhook_id: str) -> bool:
        if webhook_id not in self._ids:
            return False
        self._ids.move_to_end(webhook_id)
        return True

    def remember(self, webhook_id: str) -> None:
        self._ids[webhook_id] = None
        self._ids.move_to_end(webhook_id)
        while len(self._ids) > self._maxsize:
            self._ids.popitem(last=False)


class WebhookReceiver:
    """An ASGI app: verify, dedupe, call the handler for the event's type, acknowledge."""

    def __init__(
        self,
        bank_public_key: BankKeySource,
        handlers: Mapping[str, Handler],
        *,
        dedupe: Dedupe | None = None,
        max_body: int = 1 << 20,
    ) -> None:
        self._keys = read_public_keys(bank_public_key)
        self._handlers = dict(handlers)
        self._dedupe: Dedupe = dedupe if dedupe is not None else MemoryDedupe()
        self._max_body = max_body

    def routes(self, path: str) -> list[Any]:
        """Starlette routes to this receiver at ``path``, with and without a trailing slash
        (needs ``starlette``, imported here only)."""
        from starlette.routing import Route

        bare = "/" + path.strip("/")
        if bare == "/":
            return [Route(bare, self)]
        return [Route(bare, self), Route(bare + "/", self)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        status, description = await self._answer(scope, receive)
        body: dict[str, Any] = {"status": "ok"} if status == 200 else {"status": "error"}
        if status != 200:
            body["error"] = {"code": "webhook_rejected", "description": description}
        headers = [(b"content-type", b"application/json")]
        if status == 405:
            headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": msgspec.json.encode(body)})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, str]:
        if scope["method"] != "POST":
            return 405, "webhooks are POSTed"
        body = await _read_body(receive, self._max_body)
        if body is None:
            return 413, f"the body is over {self._max_body} bytes"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            event = verify_and_parse(body, headers.get("x-partner-sign"), self._keys)
        except SignatureError as exc:
            logger.warning("webhook refused: %s", exc.description)
            return 401, exc.description
        except WebhookError as exc:
            logger.warning("webhook refused: %s", exc.description)
            return 400, exc.description
        webhook_id = headers.get("webhook-id") or "sha256:" + hashlib.sha256(body).hexdigest()
        if await _resolve(self._dedupe.seen(webhook_id)):
            return 200, ""
        handler = self._handlers.get(event.type)
        if handler is not None:
            try:
                await _run(handler, event)
            except Exception:  # any failure of the handler means "send it again later"
                logger.exception("webhook handler for %s %s failed", event.type, webhook_id)
                return 500, "the handler failed; the webhook will be handled on a retry"
        await _resolve(self._dedupe.remember(webhook_id))
        return 200, ""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _run(handler: Handler, event: Event) -> None:
    if inspect.iscoroutinefunction(handler):
        await handler(event)
    else:
        await _resolve(await anyio.to_thread.run_sync(handler, event))


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
