"""A small ext4 file system of a test's own on a loop device: a disk that fills up, or freezes (fsfreeze)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def loop_mount(tmp_path: Path, size: str, *, freezable: bool = False) -> Iterator[Path]:
    """`size` (e.g. "8M") of ext4 mounted under `tmp_path`; thawed (if `freezable`), unmounted and its image
    deleted at the end. Skips where it cannot be made (not root, no tools, no loop devices)."""
    tools = ("mkfs.ext4", "mount", "umount", *(("fsfreeze",) if freezable else ()))
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in tools):
        pytest.skip(f"needs root with {', '.join(tools)}")
    image, mountpoint = tmp_path / "disk.img", tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if freezable:
            subprocess.run(["fsfreeze", "-u", str(mountpoint)], capture_output=True)
        subprocess.run(["umount", str(mountpoint)], check=True)
        image.unlink()
