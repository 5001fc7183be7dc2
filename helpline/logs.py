"""Structured logs that keep the helpline's promise: no message text, no platform id in clear.

Platform ids appear as a keyed hash (`pseudonym`): the same worker gets the same pseudonym, so log
lines can be followed, but the id cannot be read back without the service's secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any


def pseudonym(secret: str, value: str) -> str:
    """A short keyed hash of a platform id, for logs."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:12]


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `name` with key=value fields (values must never be message text or platform ids)."""
    logger.log(level, "%s %s", name, " ".join(f"{key}={value}" for key, value in fields.items()))


def quiet_libraries() -> None:
    """Rasa logs through structlog, which by default prints every debug line, message texts included,
    to standard output: keep it to errors, on standard error. TensorFlow is kept quiet too."""
    import os
    import sys
    import warnings

    import structlog

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
    warnings.filterwarnings("ignore")
    # httpx logs request URLs (a Telegram URL holds the bot token); python-telegram-bot logs chat ids.
    for name in ("httpx", "httpcore", "telegram", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("rasa", "tensorflow", "absl", "matplotlib", "sanic", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def configure(level: int = logging.INFO) -> None:
    """Log the helpline's own events at `level` to standard error (libraries stay at warnings)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("helpline")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    logging.getLogger("channel_adapters").handlers[:] = [handler]
    logging.getLogger("channel_adapters").setLevel(level)
    logging.getLogger("channel_adapters").propagate = False
