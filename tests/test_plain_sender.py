"""The plain-HTTP webhook sender: kept-alive connections, answers as httpx would report them."""

from __future__ import annotations

import asyncio

from payout131.webhooks.plain_sender import PlainHttpSender

HEADERS = {"Content-Type": "application/json", "Webhook-Id": "evt_1"}


async def _serve(
    answers: list[bytes], close_after_each: bool
) -> tuple[asyncio.Server, list[bytes]]:
    """A partner endpoint answering ``answers`` in turn; records each request's body."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                bodies.append(await reader.readexactly(length))
                writer.write(answers[min(len(bodies), len(answers)) - 1])
                await writer.drain()
                if close_after_each:  # closes the kept-alive connection without saying so
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, bodies


def test_a_connection_the_partner_closed_while_idle_is_replaced() -> None:
    async def main() -> list[int | None]:
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server, bodies = await _serve([ok], close_after_each=True)
        port = server.sockets[0].getsockname()[1]
        sender = PlainHttpSender(4)
        statuses = []
        for n in range(3):
            outcome = await sender.post(f"http://127.0.0.1:{port}/hook", b"%d" % n, HEADERS, 5)
            statuses.append(outcome.http_status)
            await asyncio.sleep(0.05)  # the partner has closed the connection meanwhile
        await sender.aclose()
        server.close()
        await server.wait_closed()
        assert bodies == [b"0", b"1", b"2"]  # each sent once
        return statuses

    assert asyncio.run(main()) == [200, 200, 200]


def test_answers_are_reported_by_status_with_a_snippet() -> None:
    async def main() -> None:
        answers = [
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nbusy\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
        ]
        server, _ = await _serve(answers, close_after_each=False)
        port = server.sockets[0].getsockname()[1]
        sender = PlainHttpSender(4)
        url = f"http://127.0.0.1:{port}/hook"
        moved = await sender.post(url, b"{}", HEADERS, 5)
        busy = await sender.post(url, b"{}", HEADERS, 5)
        long = await sender.post(url, b"{}", HEADERS, 5)
        await sender.aclose()
        server.close()
        await server.wait_closed()
        assert (moved.http_status, moved.ok) == (302, False)  # redirects are not followed
        assert (busy.http_status, busy.retry_after, busy.response) == (503, "7", "busy")
        assert long.ok
        assert len(long.response) == 500

    asyncio.run(main())


def test_no_answer_in_time_and_nobody_listening_are_failed_attempts() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await asyncio.sleep(10)
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = PlainHttpSender(4)
        slow = await sender.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS, 0.2)
        server.close()
        await server.wait_closed()
        gone = await sender.post(f"http://127.0.0.1:{port}/", b"{}", HEADERS, 1)
        await sender.aclose()
        assert slow.http_status is None
        assert slow.error is not None
        assert slow.error.startswith("timeout")
        assert gone.http_status is None
        assert gone.error is not None
        assert gone.error.startswith("connect")

    asyncio.run(main())
