"""Shared documents for the well_known tests: the examples from the reference (app-links.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

# §1.4 (Apple's component example, comments shortened as in the reference).
APPLE_EXAMPLE: dict[str, Any] = {
    "applinks": {
        "details": [
            {
                "appIDs": ["ABCDE12345.com.example.app", "ABCDE12345.com.example.app2"],
                "components": [
                    {"#": "no_universal_links", "exclude": True, "comment": "fragment: do not open"},
                    {"/": "/buy/*", "comment": "path starts with /buy/"},
                    {"/": "/help/website/*", "exclude": True},
                    {"/": "/help/*", "?": {"articleNumber": "????"}, "comment": "four characters"},
                ],
            }
        ]
    },
    "webcredentials": {"apps": ["ABCDE12345.com.example.app"]},
    "appclips": {"apps": ["ABCDE12345.com.example.MyApp.Clip"]},
}

# §1.5 legacy format with NOT.
LEGACY_EXAMPLE: dict[str, Any] = {
    "applinks": {
        "apps": [],
        "details": [
            {
                "appID": "ABCDE12345.com.example.app",
                "paths": ["/wwdc/news/", "NOT /videos/wwdc/2010/*", "/videos/wwdc/201?/*"],
            }
        ],
    }
}

FINGERPRINT = (
    "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5"
)

# §2.4 dynamic rules example.
ANDROID_COMPONENTS: list[dict[str, Any]] = [
    {"?": {"dl": "*"}},
    {"#": "app"},
    {"/": "/products/*"},
    {"/": "/shoes", "?": {"in_app": "true"}},
    {"/": "*", "exclude": True},
]

# §2.2 statement plus the §2.4 extension.
ANDROID_EXAMPLE: list[dict[str, Any]] = [
    {
        "relation": ["delegate_permission/common.handle_all_urls"],
        "target": {
            "namespace": "android_app",
            "package_name": "com.example",
            "sha256_cert_fingerprints": [FINGERPRINT],
        },
        "relation_extensions": {
            "delegate_permission/common.handle_all_urls": {"dynamic_app_link_components": ANDROID_COMPONENTS}
        },
    }
]


@pytest.fixture
def apple_example() -> dict[str, Any]:
    return copy.deepcopy(APPLE_EXAMPLE)


@pytest.fixture
def legacy_example() -> dict[str, Any]:
    return copy.deepcopy(LEGACY_EXAMPLE)


@pytest.fixture
def android_example() -> list[dict[str, Any]]:
    return copy.deepcopy(ANDROID_EXAMPLE)
