"""`return-router check`: validate what a config will serve, and optionally what a deployed host serves."""

from __future__ import annotations

from typing import TextIO

from router.config import AmazonPaySettings, Settings
from router.startup import try_store
from router.web.association import AssociationFiles
from well_known import Problem, check_host, validate_aasa, validate_assetlinks


async def check_settings(settings: Settings, *, remote: bool, out: TextIO, offline: bool = False,
                         ca_file: str | None = None, connect_to: str | None = None) -> list[Problem]:
    """Print one line per host and problem; return the errors found (warnings are printed only).

    Unless `offline`, also opens the store (the config loader already read the private key).
    `ca_file` and `connect_to` go to every remote fetch (see well_known.check_host).
    """
    files = AssociationFiles(settings)
    table = settings.route_table
    errors: list[Problem] = []
    hosts = sorted({r.host for r in table.routes})
    for host in hosts:
        probe = host.replace("*.", "x.") if host != "*" else "any.invalid"
        paths = ", ".join(f"{r.path} ({r.flow.value})" for r in table.paths_for_host(probe))
        out.write(f"{host}: {paths}\n")
        for kind, validate in (("aasa", validate_aasa), ("assetlinks", validate_assetlinks)):
            prepared = files.get(kind, probe)
            if prepared is not None:
                errors += _report(f"{host} {kind}", validate(prepared.body), out)
    _warn_operator(settings, out)
    if not offline:
        problem = await try_store(settings.storage.url)
        if problem is not None:
            out.write(f"{settings.source}: {problem}\n")
            errors.append(Problem("error", "storage", problem))
    if remote:
        ios, android = settings.ios, settings.android
        for host in hosts:
            if host.startswith("*"):
                out.write(f"{host}: skipped remote check (wildcard; check each real host)\n")
                continue
            problems = await check_host(
                host,
                expected_app_ids=ios.app_ids if ios else (),
                expected_package=android.package if android else None,
                expected_fingerprints=android.sha256_cert_fingerprints if android else (),
                expected_aasa=_served(files, "aasa", host),
                expected_assetlinks=_served(files, "assetlinks", host),
                ca_file=ca_file,
                connect_to=connect_to,
            )
            errors += _report(f"{host} remote", problems, out)
    out.write("ok\n" if not errors else f"{len(errors)} error(s)\n")
    return errors


def _served(files: AssociationFiles, kind: str, host: str) -> bytes | None:
    """The bytes this config serves `host` for `kind`, which the deployed file is compared with."""
    prepared = files.get(kind, host)
    return prepared.body if prepared is not None else None


def _report(label: str, problems: list[Problem], out: TextIO) -> list[Problem]:
    for problem in problems:
        out.write(f"{label}: {problem.severity}: {problem.where}: {problem.message}\n")
    return [p for p in problems if p.severity == "error"]


def _warn_operator(settings: Settings, out: TextIO) -> None:
    """Warnings about what a config leaves the buyer without (printed as `file: key: warning: …`)."""
    for key, message in operator_warnings(settings):
        out.write(f"{settings.source}: {key}: warning: {message}\n")


def operator_warnings(settings: Settings) -> list[tuple[str, str]]:
    """(key, warning) for what a loadable config leaves the buyer or the merchant without; `check`
    prints them and `serve` logs them at WARNING, so that none starts quietly."""
    warnings = []
    if settings.merchant.api_token is None:
        warnings.append(("merchant.api_token_env", "not set: the merchant API answers 401, so no checkout can be"
                         " registered and nobody can pay"))
    if settings.ios is not None and settings.ios.open_in_app_host is None:
        warnings.append(("ios.open_in_app_host", "not set: Safari never opens the app for a tap on the page's"
                         " own host, so iPhone pages offer no \"Open in app\" button"))
    if settings.merchant.shop_url is None:
        warnings.append(("merchant.shop_url", "not set: pages offer no way back to the shop"))
    if settings.test_mode:
        warnings.append(("amazon_pay.emulator", "true: the built-in emulator answers; nothing is charged"))
    deadline = settings.amazon_pay.deadline if settings.amazon_pay else AmazonPaySettings.deadline  # its default
    if settings.checkout.lease_seconds <= deadline:
        warnings.append(("checkout.lease_seconds", f"{settings.checkout.lease_seconds:g} s, not longer than"
                         f" [amazon_pay] deadline ({deadline:g} s): a return still waiting for Amazon can be taken"
                         " over by another (the same idempotency key: no second charge, but its calls twice)"))
    return warnings
