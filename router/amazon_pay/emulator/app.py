"""A local Amazon Pay API v2 (finalize, get session, get charge) for tests, demos and SDK checks.

Amazon's surface: `/v2/…`, `/sandbox/v2/…`, `/live/v2/…` (trailing slash allowed), every request
authenticated like Amazon's front end (emulator_auth). Test-only surface under `/_emulator/`:
  POST /_emulator/checkout-sessions  create a session with a scenario and optional faults -> 201
  GET  /_emulator/requests           what the Amazon surface received, in order
  POST /_emulator/reset              forget sessions, charges, idempotency keys and the log
Every response carries `x-amz-pay-request-id`. With `throttle` on (off by default; CLI `--throttle`),
each merchant key gets Amazon's token bucket per operation (Live or Sandbox figures, see
amazon_pay.quota) and requests beyond it get 429 TooManyRequests, as from Amazon.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import uvicorn
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.amazon_pay.emulator.auth import ApiError, IncomingRequest, authenticate
from router.amazon_pay.emulator.state import JSON, EmulatorState, Session, parse_session_spec
from router.amazon_pay.keys import load_private_key, load_public_key
from router.amazon_pay.quota import DEFAULT_LIMITS, Limit, TokenBucket

REQUEST_ID_HEADER = "x-amz-pay-request-id"
_API_PATH = re.compile(r"^/(?:(?P<env>sandbox|live)/)?(?P<version>v\d+)(?P<rest>/.*)?$")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
LOG_LIMIT = 10_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RequestIdMiddleware:
    """Adds x-amz-pay-request-id to every response, including Starlette's own errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


@dataclass(frozen=True)
class Operation:
    name: str  # finalizeCheckoutSession | getCheckoutSession | getCharge
    object_id: str
    path_environment: str | None  # "sandbox" | "live" from a legacy-key path prefix


def resolve_operation(method: str, raw_path: str) -> Operation:
    """Map an Amazon-surface path to an operation, or raise the error Amazon would give."""
    match = _API_PATH.match(raw_path)
    if match is None:
        raise ApiError(404, "ResourceNotFound", "The requested resource was not found.")
    if match["version"] != "v2":
        raise ApiError(400, "InvalidAPIVersion", f"The API version {match['version']} is not supported.")
    segments = [unquote(part) for part in (match["rest"] or "").strip("/").split("/") if part]
    routes = {
        ("checkoutSessions", 3, "finalize"): ("POST", "finalizeCheckoutSession"),
        ("checkoutSessions", 2, None): ("GET", "getCheckoutSession"),
        ("charges", 2, None): ("GET", "getCharge"),
    }
    if not segments:
        raise ApiError(404, "ResourceNotFound", "The requested resource was not found.")
    key = (segments[0], len(segments), segments[2] if len(segments) == 3 else None)
    if key not in routes or not segments[1]:
        raise ApiError(404, "ResourceNotFound", "The requested resource was not found.")
    expected_method, name = routes[key]
    if method != expected_method:
        raise ApiError(
            405, "UnsupportedOperation", f"{method} is not supported on this resource by the emulator."
        )
    return Operation(name, segments[1], match["env"])


def release_environment(public_key_id: str, path_environment: str | None) -> str:
    upper = public_key_id.upper()
    if upper.startswith("SANDBOX") or (not upper.startswith("LIVE") and path_environment == "sandbox"):
        return "Sandbox"
    return "Live"


def _incoming(request: Request, body: bytes) -> IncomingRequest:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.url.path)
    root = request.scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]  # mounted under a prefix: Amazon's surface starts below it
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.raw:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    query = request.scope.get("query_string", b"").decode("latin-1")
    return IncomingRequest(request.method, path.partition("?")[0], query, headers, body)


def _error_body(exc: ApiError) -> JSON:
    return {"reasonCode": exc.reason_code, "message": exc.message}


class Throttle:
    """Amazon's per-merchant, per-operation token buckets; `limits` replaces the documented figures."""

    def __init__(self, limits: Mapping[str, Limit] | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def admit(self, merchant: str, environment: str, operation: str) -> None:
        """Take a token or raise the 429 Amazon gives."""
        limit = (self.limits or DEFAULT_LIMITS["sandbox" if environment == "Sandbox" else "live"]).get(operation)
        if limit is None:
            return
        now = self.clock()
        bucket = self.buckets.setdefault((merchant, environment, operation), TokenBucket(limit, now))
        if bucket.wait_time(now) > 0:
            raise ApiError(429, "TooManyRequests", "The request was throttled; retry with exponential backoff.")
        bucket.reserve(now)


class Emulator:
    """Request handlers bound to one EmulatorState and key registry."""

    def __init__(
        self, public_keys: Mapping[str, RSAPublicKey], max_future_skew: float, clock: Callable[[], datetime],
        throttle: Throttle | None = None,
    ) -> None:
        self.public_keys = dict(public_keys)
        self.max_future_skew = max_future_skew
        self.clock = clock
        self.throttle = throttle
        self.state = EmulatorState(clock)
        self.log: deque[JSON] = deque(maxlen=LOG_LIMIT)  # bounded: a long-running demo must not grow

    async def create_session(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"reasonCode": "InvalidRequestFormat", "message": "Body is not JSON."}, 400)
        try:
            session = self.state.create_session(parse_session_spec(data))
        except ApiError as exc:
            return JSONResponse(_error_body(exc), exc.status)
        return JSONResponse({"checkoutSessionId": session.session_id}, 201)

    async def requests(self, request: Request) -> Response:
        return JSONResponse({"requests": list(self.log)})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        self.log.clear()
        return JSONResponse({"reset": True})

    async def amazon(self, request: Request) -> Response:
        incoming = _incoming(request, await request.body())
        entry: JSON = {
            "method": incoming.method,
            "path": incoming.raw_path,
            "query": incoming.query_string,  # raw, as received: what the signature was checked over
            "host": incoming.header("host"),
            "operation": None,
            "publicKeyId": None,
            "idempotencyKey": incoming.header("x-amz-pay-idempotency-key"),
            "checkoutSessionId": None,
            "chargeId": None,
            "date": incoming.header("x-amz-pay-date"),
            "bodySha256": hashlib.sha256(incoming.body).hexdigest(),
            "fault": False,
        }
        headers: dict[str, str] = {}
        self._describe_early(entry, incoming)
        try:
            status, body = await self._handle(incoming, entry, headers)
        except ApiError as exc:
            status, body = exc.status, _error_body(exc)
        entry["status"] = status
        self.log.append(entry)
        return JSONResponse(body, status, headers=headers)

    async def _handle(
        self, incoming: IncomingRequest, entry: JSON, headers: dict[str, str]
    ) -> tuple[int, JSON]:
        merchant = authenticate(incoming, self.public_keys, self.clock(), self.max_future_skew)
        entry["publicKeyId"] = merchant
        operation = resolve_operation(incoming.method, incoming.raw_path)
        entry["operation"] = operation.name
        session = self.state.session_of(operation.name, operation.object_id)
        self._describe(entry, operation, session)
        environment = release_environment(merchant, operation.path_environment)
        if self.throttle is not None:  # before the session sees the call, as Amazon's front end does
            self.throttle.admit(merchant, environment, operation.name)
        if session is not None:
            latency, fault = self.state.next_call(session)
            if latency:
                await asyncio.sleep(latency)
            if fault is not None:
                entry["fault"] = True
                if fault.retry_after is not None:
                    headers["retry-after"] = f"{fault.retry_after:g}"
                return fault.status, {
                    "reasonCode": fault.reason_code,
                    "message": "Injected fault (emulator).",
                }
        if operation.name == "getCheckoutSession":
            return self.state.get_session(operation.object_id, environment)
        if operation.name == "getCharge":
            return self.state.get_charge(operation.object_id, environment)
        key = _idempotency_key(incoming)
        fingerprint = self.state.fingerprint(incoming.method, incoming.raw_path.rstrip("/"), incoming.body)
        return self.state.idempotent(
            merchant,
            key,
            fingerprint,
            lambda: self.state.finalize(operation.object_id, incoming.body, environment),
        )

    def _describe_early(self, entry: JSON, incoming: IncomingRequest) -> None:
        """Name the operation and ids in the log even when authentication will fail."""
        try:
            operation = resolve_operation(incoming.method, incoming.raw_path)
        except ApiError:
            return
        entry["operation"] = operation.name
        self._describe(entry, operation, self.state.session_of(operation.name, operation.object_id))

    @staticmethod
    def _describe(entry: JSON, operation: Operation, session: Session | None) -> None:
        if operation.name == "getCharge":
            entry["chargeId"] = operation.object_id
            entry["checkoutSessionId"] = session.session_id if session else None
        else:
            entry["checkoutSessionId"] = operation.object_id


def _idempotency_key(incoming: IncomingRequest) -> str | None:
    key = incoming.header("x-amz-pay-idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key.strip()):
        raise ApiError(
            400, "InvalidHeaderValue", f"The value {key} provided for x-amz-pay-idempotency-key is invalid."
        )
    return key.strip() if key is not None else None


# Amazon refuses a request dated ahead of its clock (the reference documents no tolerance). The emulator
# allows a few seconds for clocks that agree within NTP's usual bounds; a minute let a signer whose clock
# ran fast by up to that pass every test.
MAX_FUTURE_SKEW = 5.0


def create_emulator_app(
    public_keys: Mapping[str, RSAPublicKey],
    *,
    max_future_skew: float = MAX_FUTURE_SKEW,
    clock: Callable[[], datetime] = _utcnow,
    throttle: bool = False,
    throttle_limits: Mapping[str, Limit] | None = None,
) -> Starlette:
    """The emulator as an ASGI app; `app.state.emulator` is the Emulator (for in-process inspection).

    `throttle` turns on Amazon's quotas (429 TooManyRequests); `throttle_limits` replaces its figures."""
    emulator = Emulator(public_keys, max_future_skew, clock, Throttle(throttle_limits) if throttle else None)
    app = Starlette(
        routes=[
            Route("/_emulator/checkout-sessions", emulator.create_session, methods=["POST"]),
            Route("/_emulator/requests", emulator.requests, methods=["GET"]),
            Route("/_emulator/reset", emulator.reset, methods=["POST"]),
            Route("/{path:path}", emulator.amazon, methods=_METHODS),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
    )
    app.state.emulator = emulator
    return app


def parse_public_key_arg(arg: str) -> tuple[str, RSAPublicKey]:
    """`KEY_ID=PEM_FILE` -> (key id, public key). A private key file is accepted too (its public half)."""
    key_id, sep, path = arg.partition("=")
    key_id, path = key_id.strip(), path.strip()
    if not sep or not key_id or not path:
        raise ValueError(f"--public-key expects KEY_ID=PEM_FILE, got {arg!r}")
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"--public-key {key_id}: cannot read {path}: {exc.strerror}") from None
    try:
        if b"PRIVATE KEY-----" in pem:
            return key_id, load_private_key(pem).public_key()
        return key_id, load_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"--public-key {key_id}: {path}: {exc}") from None


def parse_public_key_args(args: Sequence[str]) -> dict[str, RSAPublicKey]:
    keys: dict[str, RSAPublicKey] = {}
    for arg in args:
        key_id, key = parse_public_key_arg(arg)
        if key_id in keys:
            raise ValueError(f"--public-key {key_id} is given more than once")
        keys[key_id] = key
    return keys


def _tls_options(certfile: str | None, keyfile: str | None) -> dict[str, Any]:
    if bool(certfile) != bool(keyfile):
        raise ValueError("--tls-certfile and --tls-keyfile must be given together")
    if not certfile or not keyfile:
        return {}
    for flag, name in (("--tls-certfile", certfile), ("--tls-keyfile", keyfile)):
        if not Path(name).is_file():
            raise ValueError(f"{flag}: {name} is not a readable file")
    return {"ssl_certfile": certfile, "ssl_keyfile": keyfile}


def run(
    host: str,
    port: int,
    public_key_args: Sequence[str],
    tls_certfile: str | None,
    tls_keyfile: str | None,
    throttle: bool = False,
) -> None:
    """Serve the emulator with uvicorn (HTTPS when both TLS files are given). ValueError on bad args."""
    keys = parse_public_key_args(public_key_args)
    tls = _tls_options(tls_certfile, tls_keyfile)
    uvicorn.run(create_emulator_app(keys, throttle=throttle), host=host, port=port, log_level="info", **tls)
