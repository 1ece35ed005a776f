"""Run the real Caddy with the shipped Caddyfile (deploy/Caddyfile) on test ports, its state in a temp dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.bench._load import wait_for_port
from tests.support import free_port

from .certs import Certificates
from .harness import DEPLOY, UNAVAILABLE_PAGE, Proxy
from .nginx import replace_exactly

CADDYFILE = DEPLOY / "Caddyfile"


def caddy_binary() -> str | None:
    return shutil.which("caddy")


def caddyfile_for_test(state: Path, https_port: int, http_port: int, upstream: int, certs: Certificates) -> str:
    """The shipped Caddyfile with test ports, no admin API, its state (and the unavailable page's directory) in
    `state`, and the test certificate instead of one from an ACME CA (everything else as shipped)."""
    text = CADDYFILE.read_text()
    for old, new in (
        ("{\n\tservers {", f"{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
                          f"\tstorage file_system {state}\n\tservers {{"),
        ("https://pay.example.com {", f"https://pay.example.com {{\n\ttls {certs.cert} {certs.key}"),
        ("reverse_proxy 127.0.0.1:8000 {", f"reverse_proxy 127.0.0.1:{upstream} {{"),
        ("root * /var/www/return-router", f"root * {state / 'www'}"),
    ):
        text = replace_exactly(CADDYFILE, text, old, new)
    return text


@contextlib.contextmanager
def running_caddy(binary: str, upstream: int, certs: Certificates) -> Iterator[Proxy]:
    state = Path(tempfile.mkdtemp(prefix="rr-caddy-"))
    try:
        https_port, http_port = free_port(), free_port()
        config = state / "Caddyfile"
        (state / "www").mkdir()
        shutil.copy(UNAVAILABLE_PAGE, state / "www" / "unavailable.html")
        config.write_text(caddyfile_for_test(state, https_port, http_port, upstream, certs))
        env = {**os.environ, "HOME": str(state), "XDG_DATA_HOME": str(state), "XDG_CONFIG_HOME": str(state)}
        log = (state / "caddy.log").open("wb")
        proc = subprocess.Popen([binary, "run", "--config", str(config), "--adapter", "caddyfile"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_port(https_port, proc)  # type: ignore[arg-type]
                wait_for_port(http_port, proc)  # type: ignore[arg-type]
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: {(state / 'caddy.log').read_text(errors='replace')}") from None
            yield Proxy("caddy", https_port, http_port, certs, None, (state / "caddy.log",))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            log.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)
