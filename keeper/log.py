"""structlog set-up: readable console lines by default, JSON lines with --log-json.

A processor drops any value that looks like a private key (64 hex digits) and shows registered RPC
URLs as scheme and host (keeper.secrets) as a last line of defence; the key itself is never handed
to a logger."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

from keeper.secrets import scrub

_KEYLIKE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SECRET_NAMES = ("private_key", "secret", "password", "mnemonic")


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k, v in list(event.items()):
        secret_name = any(s in k.lower() for s in _SECRET_NAMES)
        keylike = isinstance(v, str) and _KEYLIKE.fullmatch(v) and not k.endswith(("hash", "id"))
        if secret_name or keylike:
            event[k] = "[redacted]"
        elif isinstance(v, str):
            event[k] = scrub(v)
        elif isinstance(v, list | tuple) and any(isinstance(x, str) for x in v):
            event[k] = [scrub(x) if isinstance(x, str) else x for x in v]
    return event


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written (not when logging was set up), so that a
    stream swapped later (tests capturing output, a closed pipe replaced) never receives lines."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(json_lines: bool = False, level: str = "info") -> None:
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
