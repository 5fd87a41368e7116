"""structlog set-up: readable console lines by default, JSON lines with --log-json.

A processor drops any value that looks like a private key (64 hex digits) and shows registered RPC
URLs as scheme and host (keeper.secrets) as a last line of defence; the key itself is never handed
to a logger."""
from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, MutableMapping
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


class CollapseRepeats:
    """Repeated identical warnings (same event, same fields) collapsed: the first is logged, the
    repeats within ``window`` seconds are dropped, and the next one after the window is logged with
    ``repeated=N`` (how many were dropped)."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (when last logged, dropped since)

    def __call__(self, _logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("level", name) not in ("warning", "error", "critical"):
            return event
        key = repr(sorted((k, repr(v)) for k, v in event.items() if k != "timestamp"))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            raise structlog.DropEvent
        if last is not None and last[1]:
            event["repeated"] = last[1]
        self._seen[key] = (now, 0)
        if len(self._seen) > 1024:  # forget the oldest
            for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:512]:
                del self._seen[k]
        return event


def setup_logging(json_lines: bool = False, level: str = "info") -> None:
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            CollapseRepeats(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
