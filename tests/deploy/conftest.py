"""return-router as deployed: `return-router serve --proxy-headers` behind the shipped proxy configs, over TLS."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.bench._load import wait_for_port
from tests.support import free_port
from tests.support.config import BASE_CONFIG

from .certs import Certificates, make_certificates
from .harness import HOST, Service, cli, service_env


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"), [HOST])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("service")
    config = work / "return-router.toml"
    metrics_port = free_port()
    config.write_text(BASE_CONFIG + f"""
[metrics]
listen = "127.0.0.1:{metrics_port}"

[merchant]
name = "Example Shop"
shop_url = "https://shop.example.com/cart"
api_token_env = "RR_TEST_TOKEN"

[storage]
url = "sqlite:///{work}/rr.db"
""")
    port = free_port()
    log = work / "serve.log"
    # trace: uvicorn logs each ASGI scope as the app receives it, after --proxy-headers applied X-Forwarded-*.
    args = [*cli(), "serve", "--config", str(config), "--proxy-headers", "--port", str(port), "--log-level", "trace",
            "--log-format", "text"]  # the checks below read access lines as text
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                env=service_env())
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield Service(port, config, log, metrics_port)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert "Traceback" not in log.read_text(errors="replace")
