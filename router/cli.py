"""The return-router command: serve · emulator · check · config example · app-config · keygen · events."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from router import logs
from router.access_log import RedactAccessLog
from router.amazon_pay.emulator.state import SCENARIOS
from router.config import ConfigError, Settings, load
from router.ops.collector import settle_collector
from router.startup import wait_for_store_before_serving
from router.validators import is_loopback
from router.version import version
from router.web.demo import demo_settings
from router.web.server import MaskIds
from router.webhooks.admin import SEARCH_WINDOW

CONFIG_ENV = "RETURN_ROUTER_CONFIG"
DEMO_DIR_ENV = "RETURN_ROUTER_DEMO_DIR"
log = logging.getLogger("router.cli")


def _load_or_exit(path: str, *, offline: bool = False) -> Settings:
    try:
        return load(path, offline=offline)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def app_factory() -> ASGIApp:
    """For uvicorn workers: the config path travels in an environment variable."""
    from router.app import serving_app
    from router.web.server import set_limits

    logs.setup()  # worker processes configure logging anew, in the format `serve` chose
    quiet_logs()
    path = os.environ.get(CONFIG_ENV)
    settings = _load_or_exit(path) if path else demo_settings(_demo_db())
    set_limits(settings.server)
    app = serving_app(settings)
    settle_collector()  # start-up's objects frozen, young collections rarer (router/ops/collector.py)
    return app


def _demo_db() -> str:
    """The demo's SQLite file, in the private directory `serve` made (and removes at exit)."""
    directory = os.environ.get(DEMO_DIR_ENV) or tempfile.mkdtemp(prefix="return-router-demo-")
    return str(Path(directory) / "demo.db")


def cmd_serve(args: argparse.Namespace) -> int:
    from router.ops import lifecycle
    from router.ops.serve import serving
    from router.web.server import uvicorn_options

    logs.setup(args.log_format)
    lifecycle.exit_zero_on_term()  # from the start: a stop while waiting for the store is a clean one too
    workers = args.workers
    settings = None
    demo_dir = None
    if args.config:
        settings = _load_or_exit(args.config)  # fail before forking workers, with every problem listed
        try:  # the lines in the chosen log format, as every line of `serve` is
            if not wait_for_store_before_serving(settings.storage.url, settings.storage.connect_retry_seconds,
                                                 log.warning):
                return 1
        except KeyboardInterrupt:  # Ctrl+C while waiting: no traceback
            return 130
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
        print(f"return-router demo: open http://{args.host}:{args.port}/ (no config given; nothing is charged)",
              file=sys.stderr)
    settings = settings or demo_settings(_demo_db())
    _log_start(settings, args, workers)
    try:  # SIGTERM ends in exit 0 (above), so `finally` removes the demo's directory
        with serving(settings, workers) as graceful_seconds:
            uvicorn.run("router.cli:app_factory", factory=True, host=args.host, port=args.port, workers=workers,
                        proxy_headers=args.proxy_headers, server_header=False, log_level=args.log_level,
                        log_config=None,  # router.logs configured every logger, uvicorn's too
                        timeout_graceful_shutdown=graceful_seconds, **uvicorn_options(settings.server))
    finally:
        if demo_dir is not None:
            shutil.rmtree(demo_dir, ignore_errors=True)
    if workers > 1 and not lifecycle.stop_requested():  # one worker's failed start stopped them all
        log.error("serve: a worker failed to start (see above) and uvicorn stopped every worker; exiting 1, "
                  "so that a supervisor (systemd's Restart=on-failure) starts the service again")
        return 1
    return 0


def _log_start(settings: Settings, args: argparse.Namespace, workers: int) -> None:
    from router.ops.start_summary import log_start

    listeners = [f"http://{args.host}:{args.port}"]
    if settings.ops.metrics_listen is not None:
        host, port = settings.ops.metrics_listen
        listeners.append(f"metrics http://{host}:{port}/metrics")
    log_start(settings, listeners, workers)


def cmd_emulator(args: argparse.Namespace) -> int:
    from router.amazon_pay.emulator.app import run

    try:
        run(args.host, args.port, args.public_key, args.tls_certfile, args.tls_keyfile, args.throttle)
    except ValueError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from router.checks import check_settings

    settings = _load_or_exit(args.config, offline=args.offline)
    if args.ca_file is not None and not Path(args.ca_file).is_file():
        print(f"check: --ca-file {args.ca_file}: no such file", file=sys.stderr)
        return 2
    try:
        problems = asyncio.run(check_settings(settings, remote=args.remote, offline=args.offline, out=sys.stdout,
                                              ca_file=args.ca_file, connect_to=args.connect_to))
    except ValueError as exc:  # a --connect-to that is no address:port
        print(f"check: {exc}", file=sys.stderr)
        return 2
    return 1 if problems else 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(resources.files("router").joinpath("example.toml").read_text(encoding="utf-8"))
    return 0


def cmd_app_config(args: argparse.Namespace) -> int:
    from router import app_config

    settings = _load_or_exit(args.config)
    if getattr(settings, args.platform) is None:
        print(f"{settings.source}: {args.platform}: not configured, so no app is associated", file=sys.stderr)
        return 2
    for note in app_config.notes(settings):
        print(f"note: {note}", file=sys.stderr)
    if args.format == "json":
        doc = (app_config.ios_entitlements(settings) if args.platform == "ios"
               else {"intentFilters": app_config.android_intent_filters(settings)})
        print(json.dumps(doc, indent=2))
    elif args.platform == "ios":
        sys.stdout.write(app_config.ios_plist(settings).decode())
    else:
        sys.stdout.write(app_config.android_xml(settings))
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
    from router.webhooks.admin import UnknownEvents, list_events, redeliver

    settings = _load_or_exit(args.config)

    async def run() -> int:
        store = open_store(settings.storage.url)
        await store.open()
        try:
            if args.action == "list":
                rows = await list_events(store, failed_only=args.failed, limit=args.limit, ref=args.ref,
                                         merchant_reference=args.merchant_reference)
                return _print_rows(rows)
            if not args.all_failed and not args.ids:
                print("events redeliver: name event ids or --all-failed", file=sys.stderr)
                return 2
            try:
                count = await redeliver(store, None if args.all_failed else args.ids, time.time())
            except UnknownEvents as exc:
                print(f"events redeliver: unknown event id(s): {exc}; nothing queued", file=sys.stderr)
                return 1
            except ValueError as exc:
                print(f"events redeliver: {exc}", file=sys.stderr)
                return 2
            print(f"queued {count} event(s) for delivery")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def _print_rows(rows: list[dict[str, object]]) -> int:
    """One JSON line per row; a reader that stops early (`| head`) ends the listing quietly."""
    try:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


EXIT_CODES = """exit codes:
  0  done; `check`: no errors (warnings may be printed)
  1  the command ran and found a problem: `check` printed errors, `events redeliver` named an unknown event id
  2  bad usage or bad input: an invalid config (every problem printed as `file: key: message`), a missing
     file, keygen's files already there"""

EMULATOR_HELP = f"""Serve the Amazon Pay API emulator (the /v2 API with signed requests, for tests and development).

Register the public key the client signs with (`return-router keygen` writes a pair) and point return-router
at it: [amazon_pay] public_key_id = the KEY_ID, private_key_file = the private half, endpoint =
"http://127.0.0.1:8400". Then, for each test checkout:
  1. register it: POST /v1/checkouts on return-router; it answers the ref and the return URLs;
  2. create the session Amazon Pay would have created:
     curl -s -X POST http://127.0.0.1:8400/_emulator/checkout-sessions -H 'content-type: application/json' \\
       -d '{{"chargeAmount": {{"amount": "14.00", "currencyCode": "USD"}},
            "paymentIntent": "AuthorizeWithCapture", "scenario": "completed",
            "webCheckoutDetails": {{"checkoutResultReturnUrl": "<the checkoutResultReturnUrl of step 1>"}}}}'
     → 201 {{"checkoutSessionId": "…"}} (amount, currency and intent as registered; the result URL as
     the app's signed button gives it: only a session naming the order's ref may decline or cancel it);
  3. open the checkoutResultReturnUrl with &amazonCheckoutSessionId=<that id> appended, as Amazon Pay does.
scenario: {", ".join(SCENARIOS)}.
GET /_emulator/requests lists what the API received; POST /_emulator/reset forgets everything."""


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag's help, except where there is none to show (None, False, [])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="return-router", description=__doc__, epilog=EXIT_CODES,
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description or help, epilog=EXIT_CODES,
                              formatter_class=HelpFormatter)

    serve = command("serve", "serve the return URLs (the built-in demo without --config)")
    serve.add_argument("--config", help="TOML config file (see `config example`); without it, the demo")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (the demo always uses 1)")
    serve.add_argument("--proxy-headers", action="store_true",
                       help="trust X-Forwarded-For/Proto from the proxy at FORWARDED_ALLOW_IPS (default 127.0.0.1,::1)")
    serve.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="uvicorn's log level")
    serve.add_argument("--log-format", choices=logs.FORMATS,
                       help="text or JSON lines on stderr (default: text when stderr is a terminal, else json)")
    serve.add_argument("--allow-public-demo", action="store_true",
                       help="serve the demo (no --config) on a non-loopback --host")
    serve.set_defaults(func=cmd_serve)

    emulator = command("emulator", "serve the Amazon Pay API emulator", description=EMULATOR_HELP)
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=8400, help="port to listen on")
    emulator.add_argument("--public-key", action="append", default=[], metavar="KEY_ID=PEM_FILE",
                          help="a public key the emulator accepts signatures of (repeatable)")
    emulator.add_argument("--tls-certfile", help="serve HTTPS with this certificate (PEM; with --tls-keyfile)")
    emulator.add_argument("--tls-keyfile", help="the private key of --tls-certfile (PEM)")
    emulator.add_argument("--throttle", action="store_true", help="answer 429 beyond Amazon's quotas")
    emulator.set_defaults(func=cmd_emulator)

    check = command("check", "validate a config and the files it serves")
    check.add_argument("--config", required=True, help="TOML config file")
    check.add_argument("--remote", action="store_true", help="also fetch the files from every deployed host")
    check.add_argument("--offline", action="store_true",
                       help="skip the store and the secrets (environment variables, key file): for CI")
    check.add_argument("--ca-file", help="with --remote: trust only the CA certificates in this PEM file")
    check.add_argument("--connect-to", metavar="ADDRESS:PORT",
                       help="with --remote: connect there instead of to what each host resolves to (a new "
                            "server before DNS points at it); the host is still sent as Host and TLS name")
    check.set_defaults(func=cmd_check)

    config = command("config", "configuration helpers")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("example", help="print a commented example config").set_defaults(func=cmd_config_example)

    app = command("app-config", "print the app side: iOS entitlements or Android intent filters")
    app.add_argument("platform", choices=["ios", "android"], help="which app side to print")
    app.add_argument("--config", required=True, help="TOML config file")
    app.add_argument("--format", choices=["xml", "json"], default="xml", help="xml or json")
    app.set_defaults(func=cmd_app_config)

    keygen = command("keygen", "generate an RSA key pair (emulator, development)")
    keygen.add_argument("--out", default="amazon-pay", help="file prefix: writes PREFIX-private.pem, PREFIX-public.pem")
    keygen.set_defaults(func=cmd_keygen)

    events = command("events", "inspect and redeliver webhook events")
    events_sub = events.add_subparsers(dest="action", required=True)
    listing = events_sub.add_parser("list", help="list events as JSON lines (newest first)", epilog=EXIT_CODES,
                                    formatter_class=HelpFormatter)
    listing.add_argument("--config", required=True, help="TOML config file (its [storage] url is read)")
    listing.add_argument("--failed", action="store_true", help="only parked events")
    listing.add_argument("--limit", type=positive_int, default=100, help="print at most this many events")
    listing.add_argument("--ref", help=f"only events of this checkout ref (searches the newest {SEARCH_WINDOW})")
    listing.add_argument("--merchant-reference", metavar="ORDER",
                         help=f"only events of this merchant order reference (searches the newest {SEARCH_WINDOW})")
    again = events_sub.add_parser("redeliver", help="queue parked events again", epilog=EXIT_CODES,
                                  formatter_class=HelpFormatter)
    again.add_argument("--config", required=True, help="TOML config file (its [storage] url is read)")
    again.add_argument("ids", nargs="*", help="event ids (evt_…) as `events list` prints them")
    again.add_argument("--all-failed", action="store_true", help="every parked event")
    for sp in (listing, again):
        sp.set_defaults(func=cmd_events)
    return p


def quiet_logs() -> None:
    """Third-party loggers that would write full URLs (with session ids) stay at WARNING."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    pool = logging.getLogger("asyncpg.pool")  # logs each failed reconnect with its traceback
    if not any(isinstance(f, logs.TracebackAtDebug) for f in pool.filters):
        pool.addFilter(logs.TracebackAtDebug())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())
    for name in ("uvicorn.asgi", "uvicorn.error"):  # --log-level trace prints each ASGI scope and message
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskIds) for f in logger.filters):
            logger.addFilter(MaskIds())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_logs()
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
