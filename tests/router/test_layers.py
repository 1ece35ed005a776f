"""The layer rule, checked on the imports themselves: cli → app → web → checkout → (amazon_pay, store, webhooks).

The domain model (router.checkout.model) and a few pure leaves (routing, validators, redact) sit at the
bottom: everyone may import them, they import nothing of the service.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The root package `router` itself holds no code (modules import it only to find its files).
LEAVES = (
    "router.checkout.model", "router.web.routing", "router.validators", "router.redact", "router.version",
    "router.metrics", "router.outbound", "router.env_proxy", "router.logs", "router.backoff", "router.tracing",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def graph(package: str) -> dict[str, set[str]]:
    return {module_name(p): set(imports_of(p)) for p in (ROOT / package).rglob("*.py")}


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(allowed: dict[str, tuple[str, ...]]) -> list[str]:
    """`allowed[prefix]`: what modules under prefix may import of router (beyond themselves and the leaves)."""
    found = []
    for module, imported in graph("router").items():
        rule = max((p for p in allowed if within(module, p)), key=len, default=None)
        if rule is None:
            continue
        for target in imported:
            if not within(target, "router") or target == "router" or within(target, rule, *LEAVES):
                continue
            if not within(target, *allowed[rule]):
                found.append(f"{module} imports {target}")
    return sorted(found)


RULES: dict[str, tuple[str, ...]] = {
    # Pure leaves: nothing of the service (well_known, the standalone library, is not the service).
    "router.checkout.model": (),
    "router.web.routing": (),
    "router.validators": (),
    "router.redact": (),
    "router.version": (),
    "router.metrics": (),
    "router.outbound": (),
    "router.env_proxy": (),
    "router.logs": (),
    "router.backoff": (),
    "router.tracing": (),
    # Amazon Pay: its client, signing and emulator know nothing of checkouts, stores or the web.
    "router.amazon_pay": (),
    # Infrastructure under the domain: persistence and the webhook outbox.
    "router.store": (),
    "router.webhooks": ("router.store",),
    # The domain: may use Amazon Pay, the store protocol and webhooks; never the web or the wiring.
    "router.checkout": ("router.amazon_pay", "router.store.base", "router.webhooks"),
    # The HTTP edge: the domain and the settings, never the wiring above it.
    "router.web": ("router.checkout", "router.config"),
}


def test_the_layer_rule_holds() -> None:
    assert violations(RULES) == []


def test_the_rule_catches_an_upward_import() -> None:
    stricter = dict(RULES, **{"router.web": ("router.web",)})  # the web may not use the domain here
    assert any(v.startswith("router.web.flows imports router.checkout") for v in violations(stricter))


@pytest.mark.parametrize("package", ["well_known"])
def test_standalone_library_imports_nothing_of_the_service(package: str) -> None:
    offending = {m: sorted(t for t in imported if within(t, "router", "starlette"))
                 for m, imported in graph(package).items()}
    assert {m: t for m, t in offending.items() if t} == {}
