"""RSA key loading and generation. Error messages never include key material."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

MIN_KEY_BITS = 2048
_PRIVATE_MARKERS = ("-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----")
_PUBLIC_MARKERS = ("-----BEGIN PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----")


def _pem_bytes(pem: bytes | str, what: str) -> bytes:
    if isinstance(pem, str):
        pem = pem.encode("utf-8")
    if not isinstance(pem, bytes):
        raise ValueError(f"{what} must be PEM text (bytes or str)")
    if b"-----BEGIN" not in pem:
        # A common mistake (seen in community clients): a file path passed where PEM text belongs.
        raise ValueError(
            f"{what} is not PEM text (no '-----BEGIN' line); pass the file's contents, not its path"
        )
    return pem


def load_private_key(pem: bytes | str) -> RSAPrivateKey:
    """Load an unencrypted RSA key: PKCS#1 ('BEGIN RSA PRIVATE KEY') or PKCS#8 ('BEGIN PRIVATE KEY')."""
    data = _pem_bytes(pem, "private key")
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise ValueError("private key is encrypted; provide the unencrypted PEM Amazon Pay issued")
    if not any(marker.encode() in data for marker in _PRIVATE_MARKERS):
        raise ValueError(
            "private key must be 'BEGIN RSA PRIVATE KEY' (PKCS#1) or 'BEGIN PRIVATE KEY' (PKCS#8) PEM"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("private key PEM could not be parsed (corrupt or unsupported encoding)") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("private key is not an RSA key; Amazon Pay signs with RSA")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"private key has {key.key_size} bits; at least {MIN_KEY_BITS} are required")
    return key


def load_public_key(pem: bytes | str) -> RSAPublicKey:
    """Load an RSA public key ('BEGIN PUBLIC KEY' SubjectPublicKeyInfo or 'BEGIN RSA PUBLIC KEY' PKCS#1)."""
    data = _pem_bytes(pem, "public key")
    if not any(marker.encode() in data for marker in _PUBLIC_MARKERS):
        raise ValueError("public key must be 'BEGIN PUBLIC KEY' or 'BEGIN RSA PUBLIC KEY' PEM")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("public key PEM could not be parsed (corrupt or unsupported encoding)") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("public key is not an RSA key")
    return key


def generate_key_pair(key_size: int = MIN_KEY_BITS) -> tuple[bytes, bytes]:
    """A new RSA key pair: (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    if key_size < MIN_KEY_BITS:
        raise ValueError(f"key_size must be at least {MIN_KEY_BITS}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem
