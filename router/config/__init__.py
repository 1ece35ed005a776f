"""Configuration: the settings types, and `load` that reads a TOML file into them.

settings.py holds the types, reader.py the section cursor, sections.py one reader per section,
load.py the file → Settings pass that reports every problem at once.
"""

from router.config.load import AASA_MAX_BYTES, load, parse
from router.config.sections import ALGORITHMS
from router.config.settings import (
    AmazonPaySettings,
    AndroidSettings,
    CheckoutSettings,
    ConfigError,
    IosSettings,
    MerchantSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    claims_for,
)

__all__ = [
    "AASA_MAX_BYTES",
    "ALGORITHMS",
    "AmazonPaySettings",
    "AndroidSettings",
    "CheckoutSettings",
    "ConfigError",
    "IosSettings",
    "MerchantSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "claims_for",
    "load",
    "parse",
]
