"""Run the real nginx with the shipped site (deploy/nginx) on test ports, unprivileged, in a prefix of its own."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.bench._load import wait_for_port
from tests.support import free_port

from .certs import Certificates
from .harness import DEPLOY, UNAVAILABLE_PAGE, Proxy

SITE = DEPLOY / "nginx" / "return-router.conf"
SNIPPET = DEPLOY / "nginx" / "return-router-proxy.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def replace_exactly(source: Path, text: str, old: str, new: str, count: int = 1) -> str:
    """Replace `old`, which must occur `count` times: a shipped file that drifts fails here, by name."""
    found = text.count(old)
    assert found == count, f"{source}: expected {count} × {old!r}, found {found}"
    return text.replace(old, new)


def site_for_test(prefix: Path, https_port: int, http_port: int, upstream: int, certs: Certificates) -> str:
    """The shipped site file with only its addresses and paths moved: ports, certificate, snippet, webroot,
    the unavailable page."""
    text = SITE.read_text()
    for old, new, count in (
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1),
        ("listen [::]:443 ssl http2;", "", 1),
        ("listen 80;", f"listen 127.0.0.1:{http_port};", 2),
        ("listen [::]:80;", "", 2),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};", 1),
        ("/etc/letsencrypt/live/pay.example.com/fullchain.pem", str(certs.cert), 1),
        ("/etc/letsencrypt/live/pay.example.com/privkey.pem", str(certs.key), 1),
        ("include /etc/nginx/snippets/return-router-proxy.conf;",
         f"include {prefix / 'return-router-proxy.conf'};", 3),
        ("root /var/www/acme;", f"root {prefix / 'acme'};", 1),
        ("alias /var/www/return-router/unavailable.html;", f"alias {prefix / 'unavailable.html'};", 1),
        ("access_log /var/log/nginx/return-router.access.log return_router;",
         f"access_log {prefix / 'return-router.access.log'} return_router;", 3),
    ):
        text = replace_exactly(SITE, text, old, new, count)
    return text


def main_config(prefix: Path) -> str:
    """What /etc/nginx/nginx.conf does around a site, pointed into `prefix` (logs, pid, temp files)."""
    # As root, nginx's workers must switch to an unprivileged user; say which, since Debian has no group nobody.
    user = ""
    if os.geteuid() == 0:
        group = "nogroup" if _group_exists("nogroup") else pwd.getpwnam("nobody").pw_gid
        user = f"user nobody {group};"
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
    return f"""{user}
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / 'access.log'};
    default_type application/octet-stream;
{temp}
    include {prefix / 'return-router.conf'};
}}
"""


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def running_nginx(binary: str, upstream: int, certs: Certificates) -> Iterator[Proxy]:
    # A private directory the unprivileged workers can traverse (pytest's tmp dirs are 0700).
    prefix = Path(tempfile.mkdtemp(prefix="rr-nginx-"))
    prefix.chmod(0o711)
    try:
        https_port, http_port = free_port(), free_port()
        (prefix / "return-router.conf").write_text(site_for_test(prefix, https_port, http_port, upstream, certs))
        shutil.copy(SNIPPET, prefix / "return-router-proxy.conf")
        shutil.copy(UNAVAILABLE_PAGE, prefix / "unavailable.html")
        (prefix / "nginx.conf").write_text(main_config(prefix))
        args = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        tested = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert tested.returncode == 0, tested.stderr
        proc = subprocess.Popen([*args, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_port(https_port, proc)  # type: ignore[arg-type]
                wait_for_port(http_port, proc)  # type: ignore[arg-type]
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: {(prefix / 'error.log').read_text(errors='replace')}") from None
            access_log = prefix / "return-router.access.log"
            yield Proxy("nginx", https_port, http_port, certs, access_log,
                        (access_log, prefix / "access.log", prefix / "error.log"))
        finally:
            proc.terminate()  # SIGTERM: nginx's fast shutdown
            proc.wait(timeout=15)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
