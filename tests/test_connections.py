"""The connection's transport: what one turn of the loop writes goes out as one write."""

from __future__ import annotations

import asyncio

import pytest

from payout131.server.connections import _LingeringTransport


class _Socket:
    """The part of asyncio's socket transport the connection uses, recording each write."""

    def __init__(self) -> None:
        self.writes: list[bytes | str] = []
        self.lost = False

    def write(self, data: bytes) -> None:
        if self.lost:
            raise RuntimeError("the handler is closed")  # as uvloop's transport does
        self.writes.append(data)

    def write_eof(self) -> None:
        self.writes.append("FIN")

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.lost

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.writes.append("RST")
        self.lost = True


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _connection() -> tuple[_Socket, _LingeringTransport]:
    socket = _Socket()
    return socket, _LingeringTransport(socket, asyncio.get_running_loop())  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_an_answers_head_and_body_go_out_in_one_write() -> None:
    socket, transport = _connection()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert socket.writes == []
    assert transport.get_write_buffer_size() == 40  # what is held counts as buffered
    await asyncio.sleep(0)  # the loop's next turn
    assert socket.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert socket.writes[1:] == [b"next"]


@pytest.mark.anyio
async def test_closing_sends_what_is_held_before_the_half_close() -> None:
    socket, transport = _connection()
    transport.write(b"answer")
    transport.close()
    assert socket.writes == [b"answer", "FIN"]
    await asyncio.sleep(0)
    assert socket.writes == [b"answer", "FIN"]  # nothing twice


@pytest.mark.anyio
async def test_a_stopping_server_sends_a_held_answer_before_it_aborts() -> None:
    socket, transport = _connection()
    transport.write(b"answer")
    transport.close_now()
    assert socket.writes == [b"answer", "RST"]
    await asyncio.sleep(0)  # the flush that was due finds nothing held


@pytest.mark.anyio
async def test_what_is_held_for_a_connection_lost_meanwhile_is_dropped_quietly() -> None:
    socket, transport = _connection()
    transport.write(b"answer")
    socket.lost = True  # the client reset the connection in the same pass
    transport.close()  # uvicorn closes on connection_lost
    await asyncio.sleep(0)  # the flush that was due: no write
    transport.write(b"late")
    transport.flush()  # no write, so no error
    assert socket.writes == []
