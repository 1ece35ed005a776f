"""redact.error_text: a store error's cause for one log line, without credentials or full ids."""

from __future__ import annotations

from router.checkout.model import LeaseLost
from router.redact import error_text
from router.store.base import StoreUnavailable


def test_the_cause_is_kept_with_its_class() -> None:
    lost = StoreUnavailable("PostgreSQL unavailable: ConnectionDoesNotExistError: connection was closed in the "
                            "middle of operation")
    assert error_text(lost) == f"StoreUnavailable: {lost}"
    assert error_text(TimeoutError()) == "TimeoutError"


def test_credentials_in_a_url_or_a_key_value_dsn_are_dropped() -> None:
    text = error_text(StoreUnavailable("cannot connect to PostgreSQL: ClientConfigurationError: bad "
                                       "postgresql://rr:Hunter2@db.internal:5432/rr?sslpassword=KeyPass1 "
                                       "host=db password='two words' user=rr"))
    assert "Hunter2" not in text and "KeyPass1" not in text and "two words" not in text
    assert "postgresql://***@db.internal:5432/rr" in text and "password=***" in text and "user=rr" in text


def test_ids_are_masked_but_words_and_paths_are_not() -> None:
    ref, session = "Zq3xY9LmP0aB7cD2eF4gH6iJ8kL1mN5o", "bd504926-f659-4ad7-a1a9-9a747aaf5275"
    text = error_text(LeaseLost(f"lease of {ref} for '{session}' lost; InsufficientResourcesError in "
                                "/var/lib/return-router/router_2026_01.db\nsecond line"))
    assert ref not in text and session not in text
    assert "Zq3x…mN5o" in text and "bd50…5275" in text
    assert "InsufficientResourcesError" in text and "/var/lib/return-router/router_2026_01.db" in text
    assert "\n" not in text and text.endswith("second line")


def test_a_long_message_is_cut() -> None:
    text = error_text(StoreUnavailable("disk " * 200))
    assert len(text) < 340 and text.endswith("…")
