"""The installed distribution's version (a source tree that is not installed says so)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("return-router")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
