"""Shared fixtures: the trained assistant, loaded once per test run."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def paths():
    from helpline.paths import ProjectPaths

    return ProjectPaths()


@pytest.fixture(scope="session")
def assistant(paths):
    """The real trained model (trained first if it is missing or out of date)."""
    from helpline import training
    from helpline.assistant import Assistant
    from helpline.logs import quiet_libraries

    quiet_libraries()
    training.train(paths, progress=lambda line: None)
    return Assistant.load(paths)


@pytest.fixture(scope="session")
def run():
    """Run a coroutine to completion on one event loop shared by the session."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()
