"""Least data in logs: identifiers are shown by their ends only."""

from __future__ import annotations


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
