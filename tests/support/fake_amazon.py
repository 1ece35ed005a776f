"""An in-process `AmazonPay` (router/checkout/service.py's protocol) with scripted answers, for fast tests
of the state machine. Each operation pops its next scripted answer: a result, an exception to raise, or
an async callable run at call time (to act while "Amazon" is thinking). Every call is recorded."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router.amazon_pay.errors import AmazonPayError
from router.amazon_pay.models import Charge, CheckoutSession, FinalizeResult

Answer = Any  # a result, a BaseException, or an async callable returning a result


def session(session_id: str, state: str = "Completed", *, reason_code: str | None = None,
            charge_id: str | None = None, ref: str | None = None) -> CheckoutSession:
    """A checkout session as Amazon would describe it (only the fields the service reads); `ref`: its
    result URL names it, as one made from registering's URLs does."""
    details = {"checkoutResultReturnUrl": f"https://pay.example.com/amazon-pay/result?ref={ref}"} if ref else {}
    return CheckoutSession.from_json({
        "webCheckoutDetails": details,
        "checkoutSessionId": session_id,
        "statusDetails": {"state": state, "reasonCode": reason_code},
        "chargeId": charge_id,
        "chargePermissionId": "S01-0000000-0000000" if charge_id else None,
        "buyer": {"name": "Test Buyer", "email": "buyer@example.com", "buyerId": "amzn1.account.TEST"},
        "paymentPreferences": [{"paymentDescriptor": "Visa ****1111"}],
        "paymentDetails": {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}},
    })


def charge(charge_id: str, state: str, reason_code: str | None = None) -> Charge:
    return Charge.from_json({"chargeId": charge_id, "statusDetails": {"state": state, "reasonCode": reason_code}})


def finalized(session_id: str, status: int = 200, *, charge_id: str | None = "S01-0000000-0000000-C000001"
              ) -> FinalizeResult:
    return FinalizeResult(http_status=200 if status == 200 else 202,
                          session=session(session_id, charge_id=charge_id))


def error(status: int, reason_code: str) -> AmazonPayError:
    return AmazonPayError(f"HTTP {status} {reason_code}", status=status, reason_code=reason_code)


@dataclass
class FakeAmazonPay:
    finalizes: deque[Answer] = field(default_factory=deque)
    sessions: deque[Answer] = field(default_factory=deque)
    charges: deque[Answer] = field(default_factory=deque)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)  # (operation, object id, idem. key)

    async def finalize_checkout_session(
        self, checkout_session_id: str, payload: Mapping[str, Any], idempotency_key: str
    ) -> FinalizeResult:
        self.calls.append(("finalize", checkout_session_id, idempotency_key))
        result: FinalizeResult = await self._answer(self.finalizes, "finalize")
        return result

    async def get_checkout_session(self, checkout_session_id: str) -> CheckoutSession:
        self.calls.append(("getCheckoutSession", checkout_session_id, None))
        result: CheckoutSession = await self._answer(self.sessions, "getCheckoutSession")
        return result

    async def get_charge(self, charge_id: str) -> Charge:
        self.calls.append(("getCharge", charge_id, None))
        result: Charge = await self._answer(self.charges, "getCharge")
        return result

    def operations(self) -> list[str]:
        return [operation for operation, _, _ in self.calls]

    @staticmethod
    async def _answer(queue: deque[Answer], operation: str) -> Any:
        if not queue:
            raise AssertionError(f"unscripted {operation} call")
        answer = queue.popleft()
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            call: Callable[[], Awaitable[Any]] = answer
            return await call()
        return answer
