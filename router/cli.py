"""The return-router command: serve · emulator · check · config example · keygen · events."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from router.config import ConfigError, Settings, load
from router.redact import mask
from router.startup import wait_for_store_before_serving
from router.validators import is_loopback
from router.web.demo import demo_settings

CONFIG_ENV = "RETURN_ROUTER_CONFIG"
DEMO_DIR_ENV = "RETURN_ROUTER_DEMO_DIR"
log = logging.getLogger("router.cli")
ROUTE_WORD = re.compile(r"[a-z.-]+")  # "checkout-sessions", "apple-app-site-association": not identifiers


def _load_or_exit(path: str, *, offline: bool = False) -> Settings:
    try:
        return load(path, offline=offline)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def app_factory() -> Starlette:
    """For uvicorn workers: the config path travels in an environment variable."""
    from router.app import create_app

    quiet_logs()  # worker processes configure logging anew
    path = os.environ.get(CONFIG_ENV)
    return create_app(_load_or_exit(path) if path else demo_settings(_demo_db()))


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _demo_db() -> str:
    """The demo's SQLite file, in the private directory `serve` made (and removes at exit)."""
    directory = os.environ.get(DEMO_DIR_ENV) or tempfile.mkdtemp(prefix="return-router-demo-")
    return str(Path(directory) / "demo.db")


def cmd_serve(args: argparse.Namespace) -> int:
    workers = args.workers
    demo_dir = None
    if args.config:
        settings = _load_or_exit(args.config)  # fail before forking workers, with every problem listed
        if not wait_for_store_before_serving(settings.storage.url, settings.storage.connect_retry_seconds, _say):
            return 1
        if settings.test_mode:
            log.warning("[amazon_pay] emulator = true: the built-in emulator answers; nothing is charged")
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    else:
        if not is_loopback(args.host) and not args.allow_public_demo:
            print(f"serve: refusing to serve the demo on {args.host} (not a loopback address): it needs no "
                  "login and takes any Host; pass --allow-public-demo to do it anyway", file=sys.stderr)
            return 2
        os.environ.pop(CONFIG_ENV, None)
        if workers > 1:
            print("the demo keeps its Amazon Pay emulator in memory: serving it with 1 worker", file=sys.stderr)
            workers = 1
        demo_dir = tempfile.mkdtemp(prefix="return-router-demo-")  # 0700; removed at exit
        os.environ[DEMO_DIR_ENV] = demo_dir
        # uvicorn re-raises SIGTERM after its graceful shutdown: end through `finally`, not the default handler.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        print(f"return-router demo: open http://{args.host}:{args.port}/ (no config given; nothing is charged)",
              file=sys.stderr)
    try:
        uvicorn.run("router.cli:app_factory", factory=True, host=args.host, port=args.port, workers=workers,
                    proxy_headers=args.proxy_headers, server_header=False, log_level=args.log_level)
    finally:
        if demo_dir is not None:
            shutil.rmtree(demo_dir, ignore_errors=True)
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from router.amazon_pay.emulator.app import run

    try:
        run(args.host, args.port, args.public_key, args.tls_certfile, args.tls_keyfile)
    except ValueError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from router.checks import check_settings

    settings = _load_or_exit(args.config, offline=args.offline)
    problems = asyncio.run(check_settings(settings, remote=args.remote, offline=args.offline, out=sys.stdout))
    return 1 if problems else 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(resources.files("router").joinpath("example.toml").read_text(encoding="utf-8"))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from router.amazon_pay import generate_key_pair

    private_pem, public_pem = generate_key_pair()
    private_path, public_path = Path(f"{args.out}-private.pem"), Path(f"{args.out}-public.pem")
    for path in (private_path, public_path):
        if path.exists():
            print(f"keygen: {path} exists; not overwriting it", file=sys.stderr)
            return 2
    private_path.touch(mode=0o600)
    private_path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    print(f"wrote {private_path} (keep it secret) and {public_path}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from router.store import open_store
    from router.webhooks.admin import list_events, redeliver

    settings = _load_or_exit(args.config)

    async def run() -> int:
        store = open_store(settings.storage.url)
        await store.open()
        try:
            if args.action == "list":
                for row in await list_events(store, failed_only=args.failed):
                    print(json.dumps(row, ensure_ascii=False))
                return 0
            if not args.all_failed and not args.ids:
                print("events redeliver: name event ids or --all-failed", file=sys.stderr)
                return 2
            count = await redeliver(store, None if args.all_failed else args.ids, time.time())
            print(f"queued {count} event(s) for delivery")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="return-router", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the return URLs (the built-in demo without --config)")
    serve.add_argument("--config", help="TOML config file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from the proxy")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--allow-public-demo", action="store_true",
                       help="serve the demo (no --config) on a non-loopback --host")
    serve.set_defaults(func=cmd_serve)

    emulator = sub.add_parser("emulator", help="serve the Amazon Pay API emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8400)
    emulator.add_argument("--public-key", action="append", default=[], metavar="KEY_ID=PEM_FILE")
    emulator.add_argument("--tls-certfile")
    emulator.add_argument("--tls-keyfile")
    emulator.set_defaults(func=cmd_emulator)

    check = sub.add_parser("check", help="validate a config and the files it serves")
    check.add_argument("--config", required=True)
    check.add_argument("--remote", action="store_true", help="also fetch the files from every deployed host")
    check.add_argument("--offline", action="store_true",
                       help="skip the store and the secrets (environment variables, key file): for CI")
    check.set_defaults(func=cmd_check)

    config = sub.add_parser("config", help="configuration helpers")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("example", help="print a commented example config").set_defaults(func=cmd_config_example)

    keygen = sub.add_parser("keygen", help="generate an RSA key pair (emulator, development)")
    keygen.add_argument("--out", default="amazon-pay", help="file prefix (default: amazon-pay)")
    keygen.set_defaults(func=cmd_keygen)

    events = sub.add_parser("events", help="inspect and redeliver webhook events")
    events_sub = events.add_subparsers(dest="action", required=True)
    listing = events_sub.add_parser("list", help="list events (newest first)")
    listing.add_argument("--config", required=True)
    listing.add_argument("--failed", action="store_true", help="only parked events")
    again = events_sub.add_parser("redeliver", help="queue parked events again")
    again.add_argument("--config", required=True)
    again.add_argument("ids", nargs="*")
    again.add_argument("--all-failed", action="store_true")
    for sp in (listing, again):
        sp.set_defaults(func=cmd_events)
    return p


def redact_path(path: str) -> str:
    """"/v1/checkout-sessions/<id>/finalize?ref=…" → "/v1/checkout-sessions/bd50…5275/finalize?…"."""
    path, query = path.split("?", 1) if "?" in path else (path, None)
    segments = [mask(s) if len(s) >= 16 and not ROUTE_WORD.fullmatch(s) else s for s in path.split("/")]
    return "/".join(segments) + ("?…" if query is not None else "")


class RedactAccessLog(logging.Filter):
    """Access log lines keep the route but not the refs and session ids in the path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            if isinstance(path, str):
                record.args = (client, method, redact_path(path), version, status)
        return True


def quiet_logs() -> None:
    """Third-party loggers that would write full URLs (with session ids) stay at WARNING."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(RedactAccessLog())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_logs()
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
