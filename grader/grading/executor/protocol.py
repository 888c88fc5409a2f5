"""Length-prefixed JSON messages between the grader and a forked executor child."""

from __future__ import annotations

import json
import socket
import struct

_HEADER = struct.Struct("!Q")


class ConnectionClosed(EOFError):
    """The other side went away (the child died, or the grader killed it)."""


def send_message(sock: socket.socket, message: dict) -> None:
    payload = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionClosed("connection closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return json.loads(_recv_exactly(sock, size))
