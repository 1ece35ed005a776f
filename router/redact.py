"""Least data in logs: identifiers are shown by their ends only."""

from __future__ import annotations

import re


def mask(value: str | None) -> str:
    """"bd504926-f659-4ad7-a1a9-9a747aaf5275" → "bd50…5275"; short values are hidden entirely."""
    if not value:
        return "-"
    if len(value) < 12:
        return "…"
    return f"{value[:4]}…{value[-4:]}"


def mask_email(email: str) -> str:
    """"jane.doe@example.com" → "j***@example.com": enough for the buyer to recognise it."""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"


# Path segments that are route words ("checkout-sessions", "apple-app-site-association"), never ids.
ROUTE_WORD = re.compile(r"[a-z.-]+")

_PLAIN_PATHS: set[str] = set()  # paths seen with nothing to mask (/.well-known/…, /healthz): no work next time
_PLAIN_PATHS_MAX = 1024


def redact_path(path: str) -> str:
    """"/v1/checkout-sessions/<id>/finalize?ref=…" → "/v1/checkout-sessions/bd50…5275/finalize?…"."""
    if path in _PLAIN_PATHS:
        return path
    redacted = _redact_path(path)
    if redacted == path and len(_PLAIN_PATHS) < _PLAIN_PATHS_MAX:
        _PLAIN_PATHS.add(path)
    return redacted


# The segment after one of these is an id whatever its shape (a session id may be 8 letters).
ID_AFTER = frozenset({"checkout-sessions", "checkouts"})


def _redact_path(path: str) -> str:
    path, query = path.split("?", 1) if "?" in path else (path, None)
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment and ((i > 0 and segments[i - 1] in ID_AFTER) or (
                len(segment) >= 16 and not ROUTE_WORD.fullmatch(segment))):
            segments[i] = mask(segment)
    return "/".join(segments) + ("?…" if query is not None else "")


# What a store error's message may hold besides the cause: a URL's user:password@, a key=value secret
# (a libpq-style DSN), an id (a ref, a session id) that a value in a message or a domain error names.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
_SECRET_PAIR = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword|secret|token)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)")
_TOKEN = re.compile(r"(?<![/\w.-])[A-Za-z0-9_-]{16,}(?![/\w.-])")  # not a segment of a file's path
_WORDS = re.compile(r"(?:[A-Z]?[a-z]+)+(?:[_-](?:[A-Z]?[a-z]+)+)*")  # ConnectionDoesNotExistError, read_only
MAX_ERROR_TEXT = 300


def error_text(exc: BaseException) -> str:
    """An exception for one log line: its class and its message (the cause an operator needs: "database or
    disk is full", asyncpg's error class and message), with credentials dropped and ids masked."""
    message = " ".join(str(exc).split())  # one line
    message = _URL_USERINFO.sub(r"\1***@", message)
    message = _SECRET_PAIR.sub(r"\1\2***", message)
    message = _TOKEN.sub(lambda found: found[0] if _WORDS.fullmatch(found[0]) else mask(found[0]), message)
    if len(message) > MAX_ERROR_TEXT:
        message = message[:MAX_ERROR_TEXT] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
