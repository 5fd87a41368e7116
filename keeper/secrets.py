"""Secrets kept out of errors and logs: private keys and passwords are never echoed, RPC URLs are
shown as scheme and host only (credentials hide in the user info, the path or the query: Infura's
``/v3/<key>``, Alchemy's ``/v2/<key>``, ``?apikey=``).

``register_url`` remembers the secret parts of a configured URL; ``scrub`` replaces them (and the
whole URL) in any text; the log set-up applies it to every value as a last line of defence, and the
command line to the errors it prints."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

KEYLIKE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
REDACTED = "[redacted]"
_registered: dict[str, str] = {}  # secret text -> what replaces it


def looks_like_key(value: str) -> bool:
    """64 hex digits, with or without 0x: a private key (or a 32-byte id, where one is expected)."""
    return bool(KEYLIKE.fullmatch(value.strip()))


def public_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what may be shown of an endpoint."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparseable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or '?'}://{host}{port}"


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: user info, path, query, fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    out = [p for p in (parts.username, parts.password, parts.query, parts.fragment) if p]
    if parts.path and parts.path.strip("/"):
        out.append(parts.path)
    return [s for s in out if len(s) >= 4]


def register_url(url: str) -> str:
    """Remember ``url``'s secret parts for ``scrub``; returns its public form."""
    public = public_url(url)
    _registered[url] = public
    for s in url_secrets(url):
        _registered.setdefault(s, REDACTED)
    return public


def scrub(text: str) -> str:
    """``text`` with every registered URL shown as its public form and its secret parts redacted."""
    for secret in sorted(_registered, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _registered[secret])
    return text
