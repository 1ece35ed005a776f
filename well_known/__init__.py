"""Build, parse, validate and match Apple app-site-association and Android assetlinks files.

Standalone: depends on nothing of the router service (httpx only for `remote.check_host`).
"""

from .aasa import APP_ID_RE, build_aasa, is_valid_app_id, validate_aasa
from .assetlinks import HANDLE_ALL_URLS, build_assetlinks, normalize_fingerprint, validate_assetlinks
from .claims import PathClaim
from .matching import Match, aasa_app_ids, aasa_match, aasa_opens, android_dynamic_match
from .problems import Problem, errors
from .remote import check_host
from .serialize import dumps

__all__ = [
    "APP_ID_RE",
    "HANDLE_ALL_URLS",
    "Match",
    "PathClaim",
    "Problem",
    "aasa_app_ids",
    "aasa_match",
    "aasa_opens",
    "android_dynamic_match",
    "build_aasa",
    "build_assetlinks",
    "check_host",
    "dumps",
    "errors",
    "is_valid_app_id",
    "normalize_fingerprint",
    "validate_aasa",
    "validate_assetlinks",
]
