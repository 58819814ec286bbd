"""A partner's webhook endpoint on a loopback port, answering as each test scripts it.

Every request is kept (path, headers, exact body) before it is answered. Answers are
functions of the request handler: ``ok()``, ``status(500)``, ``status(429, retry_after=600)``,
``sleep(seconds)`` (answers too late), ``reset()`` (RST instead of an answer), ``garbage()``
(bytes that are not HTTP), ``gate(event)`` (answers 200 once the event is set).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signature(self) -> str:
        return self.headers["x-partner-sign"]

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def status(
    code: int,
    body: bytes = b"",
    retry_after: str | None = None,
    location: str | None = None,
    close: bool = False,
) -> Answer:
    """An answer with ``code``; ``close``: and the connection closed after it (a reset on
    the next request then meets a fresh connection, which the sender does not retry)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        if location is not None:
            handler.send_header("Location", location)
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def ok() -> Answer:
    return status(200, b'{"ok":true}')


def sleep(seconds: float) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        handler.close_connection = True
        with contextlib.suppress(OSError):  # the sender gave up long ago
            ok()(handler)

    return answer


def reset() -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    return answer


def garbage() -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"\x00\x01\x02 this is not HTTP \xff\r\n\r\n")
        handler.wfile.flush()
        handler.close_connection = True

    return answer


def gate(event: threading.Event) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        event.wait(30)
        ok()(handler)

    return answer


class Receiver:
    """The endpoint: ``url``, the ``deliveries`` so far, and how to answer the next ones.

    ``script(...)`` queues answers for the next requests; after the queue, ``respond`` (a
    function of the delivery, ``ok()`` by default) decides.
    """

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.respond: Callable[[Delivery], Answer] = lambda delivery: ok()
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0
        self.url = ""

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def _take(self, delivery: Delivery) -> Answer:
        with self._lock:
            self.deliveries.append(delivery)
            self._active += 1
            self.max_active = max(self.max_active, self._active)
            if self._script:
                return self._script.popleft()
        return self.respond(delivery)

    def _done(self) -> None:
        with self._lock:
            self._active -= 1

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            found = list(self.deliveries)
        return [d.json() for d in found if path is None or d.path == path]

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], seconds: float = 20) -> None:
        """Until ``predicate(deliveries)`` holds; fail after ``seconds`` (a safety net)."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                found = list(self.deliveries)
            if predicate(found):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver waited in vain; it has {len(found)} deliveries")
            time.sleep(0.01)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = receiver._take(Delivery(self.path, headers, body))
            try:
                answer(self)
            finally:
                receiver._done()

        def do_GET(self) -> None:  # what a followed redirect would look like
            receiver._take(Delivery(self.path, {}, b""))
            receiver._done()
            status(200)(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections under load


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1; stopped on exit."""
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    host, port = server.server_address[:2]
    receiver.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
