"""Secrets named in the config: `<name>_env = "VAR"` (an environment variable) or `<name>_file = "path"`
(a file, e.g. a Docker or Kubernetes secret); exactly one of the pair."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SecretProblem(Exception):
    """A problem with one key: (`key`, message), for the config's "file: key: message" lines."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def resolve_secret(section: Mapping[str, Any], prefix: str, name: str, env: Mapping[str, str],
                   base_dir: Path) -> str | None:
    """The secret `name` of `section` (None when neither key is set); SecretProblem names the key.

    A file is read at load time (relative paths from the config's directory); one trailing newline
    (`\\n` or `\\r\\n`), as editors and `echo` add, is stripped; an empty secret is refused.
    """
    env_key, file_key = f"{prefix}.{name}_env", f"{prefix}.{name}_file"
    var, path = section.get(f"{name}_env"), section.get(f"{name}_file")
    if var is not None and path is not None:
        raise SecretProblem(file_key, f"set only one of {name}_env or {name}_file")
    if var is not None:
        if not isinstance(var, str):
            raise SecretProblem(env_key, "must be a string")
        value = env.get(var)
        if not value:
            raise SecretProblem(env_key, f"environment variable {var} is not set or empty")
        return value
    if path is None:
        return None
    if not isinstance(path, str):
        raise SecretProblem(file_key, "must be a string")
    try:
        text = (base_dir / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretProblem(file_key, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretProblem(file_key, f"{path} is empty")
    return value
