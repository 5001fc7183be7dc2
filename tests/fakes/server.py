"""Run an ASGI app on 127.0.0.1 in a background thread for the length of a test."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app, port: int = 0, lifespan: str = "off") -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL ("http://127.0.0.1:PORT")."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def running(fake):
    """Serve a fake platform API (anything with an ASGI `.app`); sets and yields it with its `.url`."""
    with serve(fake.app) as url:
        fake.url = url
        yield fake
