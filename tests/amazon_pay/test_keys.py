"""Key loading: both private PEM flavours, clear errors that never echo key material."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from router.amazon_pay.keys import generate_key_pair, load_private_key, load_public_key
from tests.amazon_pay.helpers import KeyPair


def test_generated_pair_is_pkcs8_and_spki(keys: KeyPair) -> None:
    assert keys.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = load_private_key(keys.private_pem)
    assert private.key_size == 2048
    public = load_public_key(keys.public_pem.decode())
    assert public.public_numbers() == private.public_key().public_numbers()


def test_pkcs1_private_key_and_str_input(keys: KeyPair) -> None:
    pkcs1 = keys.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    loaded = load_private_key(pkcs1.decode())
    assert loaded.private_numbers() == keys.private_key.private_numbers()


def test_pkcs1_public_key(keys: KeyPair) -> None:
    pem = keys.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert load_public_key(pem).public_numbers() == keys.private_key.public_key().public_numbers()


def test_errors_are_clear_and_never_echo_the_key(keys: KeyPair) -> None:
    body = keys.private_pem.decode().splitlines()[1]
    corrupt = keys.private_pem.replace(body.encode(), body[::-1].encode())
    with pytest.raises(ValueError, match="could not be parsed") as info:
        load_private_key(corrupt)
    assert body[:16] not in str(info.value) and body[::-1][:16] not in str(info.value)
    with pytest.raises(ValueError, match="not its path"):
        load_private_key("/etc/amazon-pay/private.pem")
    with pytest.raises(ValueError, match="BEGIN RSA PRIVATE KEY"):
        load_private_key(keys.public_pem)
    with pytest.raises(ValueError, match="PEM text"):
        load_private_key(12345)  # type: ignore[arg-type]


def test_encrypted_ec_and_small_keys_are_refused(keys: KeyPair) -> None:
    encrypted = keys.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="encrypted"):
        load_private_key(encrypted)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_private_key(ec_pem)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="1024 bits"):
        load_private_key(small)
    with pytest.raises(ValueError, match="key_size"):
        generate_key_pair(1024)
