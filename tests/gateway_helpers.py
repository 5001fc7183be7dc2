"""Running the gateway in the tests: in-process (uvicorn in a thread, the session's assistant) or
as a real `helpline run` process (for crash tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import httpx

from helpline.settings import Settings
from tests.fakes.server import free_port, serve


@contextlib.contextmanager
def gateway(assistant, tmp_path: Path, **overrides) -> Iterator[httpx.Client]:
    """The gateway on 127.0.0.1 with a fresh SQLite database; yields a client for it."""
    from helpline.gateway import create_app

    values = {"database_url": f"sqlite:///{tmp_path / 'helpline.db'}", "secret_key": "test-secret",
              "outbox_backoff_seconds": 0.2}
    values.update(overrides)
    app = create_app(Settings(_env_file=None, **values), assistant=assistant)
    with serve(app, lifespan="on") as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            wait_ready(client)
            yield client


def query(tmp_path: Path, sql: str, *args) -> list:
    """Rows of `sql` on the test gateway's SQLite database (see `gateway`)."""
    with sqlite3.connect(tmp_path / "helpline.db") as connection:
        return connection.execute(sql, args).fetchall()


def wait_ready(client: httpx.Client, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError("gateway not ready")


def wait_for(condition, seconds: float = 20, step: float = 0.05):
    """Poll `condition()` until it returns something truthy; return it (or fail after `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {seconds} s")
        time.sleep(step)


@contextlib.contextmanager
def gateway_process(env: Dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`helpline run` as its own process (killed at the end)."""
    port = env.get("HELPLINE_PORT") or str(free_port())
    full = {**os.environ, "HELPLINE_PORT": port, **env}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "helpline.cli", "run"], env=full, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    process.base_url = f"http://127.0.0.1:{port}"
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
