"""Typed errors raised by the Amazon Pay client; no httpx exception escapes it."""

from __future__ import annotations


class AmazonPayError(Exception):
    """Amazon Pay answered with an error (status set) or could not be reached (status None)."""

    # Refused in this process before the attempt went out (quota, breaker, spent deadline): nothing of
    # it is Amazon's, so logs must not read it as Amazon's answer.
    local = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason_code: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason_code = reason_code
        self.message = message
        self.request_id = request_id
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        """Whether the same request (same idempotency key and body) may succeed later."""
        return self.status is None or is_retryable_status(self.status)

    def __str__(self) -> str:
        parts = [f"status={self.status}", f"reasonCode={self.reason_code}", f"requestId={self.request_id}"]
        return f"{self.message} ({', '.join(parts)}, attempts={self.attempts})"


class AmazonPayTransportError(AmazonPayError):
    """No HTTP answer: connection failures or timeouts on every attempt, or the deadline ran out."""


class AmazonPayDeadlineSpent(AmazonPayTransportError):
    """Earlier calls of the same return spent the shared deadline: nothing was sent."""

    local = True


class AmazonPayProtocolError(AmazonPayError):
    """Amazon Pay answered 2xx but the body is not the JSON object the operation promises."""


def is_retryable_status(status: int) -> bool:
    """408 Request Timeout, 425 Too Early, 429 Too Many Requests and every 5xx (as the SDKs intend)."""
    return status in (408, 425, 429) or 500 <= status <= 599


class AmazonPayThrottled(AmazonPayError):
    """No quota token for the operation within the allowed wait: nothing was sent to Amazon Pay."""

    local = True


class AmazonPayCircuitOpen(AmazonPayError):
    """Amazon Pay failed repeatedly and background work is paused: nothing was sent."""

    local = True
