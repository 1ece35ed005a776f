"""Shared by the deployment tests: the service under test, a TLS proxy in front of it, and requests to both."""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from .certs import Certificates

HOST = "pay.example.com"  # the return host of BASE_CONFIG, and the server_name of the shipped configs
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNAVAILABLE_PAGE = DEPLOY / "unavailable.html"  # what the proxies answer while the service is unreachable
TOKEN = "deploy-test-token-0123456789"


def service_env() -> dict[str, str]:
    """The environment the config's api_token_env names (as the systemd unit's EnvironmentFile gives it)."""
    return {**os.environ, "RR_TEST_TOKEN": TOKEN}


def cli() -> list[str]:
    """The installed `return-router` script (what the systemd unit runs), else the module."""
    script = Path(sys.executable).with_name("return-router")
    return [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]


@dataclass
class Service:
    port: int
    config: Path
    log: Path
    metrics_port: int  # the metrics listener ([metrics] listen), never behind the proxy

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Proxy:
    """A TLS proxy on 127.0.0.1: `https_port` for the return host, `http_port` for plain HTTP."""

    name: str
    https_port: int
    http_port: int
    certs: Certificates
    access_log: Path | None  # where the proxy logs requests (None: it logs none, as Caddy without `log`)
    logs: tuple[Path, ...]  # every file the proxy writes log lines to, the access log included

    def client(self, local_address: str | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        return httpx.Client(transport=httpx.HTTPTransport(verify=context, local_address=local_address),
                            follow_redirects=False, timeout=30)


def fetch(client: httpx.Client, method: str, url: str, *, headers: dict[str, str] | None = None,
          content: bytes | None = None) -> httpx.Response:
    """`url` on 127.0.0.1 with HOST as Host header and TLS server name (the certificate is checked for it)."""
    return client.request(method, url, headers={"host": HOST, **(headers or {})}, content=content,
                          extensions={"sni_hostname": HOST})


