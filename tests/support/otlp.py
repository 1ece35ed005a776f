"""An OTLP/HTTP trace collector in the test's process, for `[tracing] otlp_endpoint`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import serve_app


@contextlib.contextmanager
def otlp_collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """(base URL, the exports received so far, in order), while inside."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        received.append(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    with serve_app(Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])) as url:
        yield url, received
