"""AES-256-GCM encryption at rest with key ids, so keys can be rotated.

The active key comes from ``ONCOBOARD_ENCRYPTION_KEY`` (base64 of 32 bytes) or, when that is
unset, from a key file created once in ``data_dir/keys``. Older keys stay in that folder so rows
written under them remain readable after a rotation; each row stores the id of its key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

_NONCE_BYTES = 12


class CryptoError(RuntimeError):
    """Data could not be encrypted or decrypted (wrong key, tampered ciphertext, unknown key id)."""


def key_id_of(key: bytes) -> str:
    """A short public identifier of a key (never the key itself)."""
    return hashlib.sha256(b"oncoboard-key-id:" + key).hexdigest()[:12]


class Keyring:
    """The active key for writing and every known key for reading."""

    def __init__(self, active: bytes, others: list[bytes] | None = None) -> None:
        if len(active) != 32:
            raise CryptoError("an AES-256 key must be 32 bytes")
        self.active_id = key_id_of(active)
        self._keys = {key_id_of(k): k for k in [*(others or []), active]}

    @classmethod
    def from_settings(cls, encryption_key: str | None, data_dir: Path) -> Keyring:
        """The configured key, or the key file in ``data_dir/keys`` (created on first use)."""
        key_dir = data_dir / "keys"
        stored = _read_key_files(key_dir)
        if encryption_key:
            try:
                active = base64.b64decode(encryption_key, validate=True)
            except ValueError as exc:
                raise CryptoError("ONCOBOARD_ENCRYPTION_KEY is not valid base64") from exc
            return cls(active, stored)
        active_file = key_dir / "active.key"
        if not active_file.exists():
            key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = secrets.token_bytes(32)
            _write_key(active_file, key)
            _write_key(key_dir / f"{key_id_of(key)}.key", key)
            logger.info("created a new data-at-rest key %s in %s", key_id_of(key), key_dir)
        active = base64.b64decode(active_file.read_text().strip())
        return cls(active, stored)

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for another purpose (e.g. pseudonyms), derived from the active key."""
        import hmac

        return hmac.new(self._keys[self.active_id], b"oncoboard-derive:" + purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> tuple[bytes, str]:
        """Encrypt with the active key; returns (nonce + ciphertext, key id)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._keys[self.active_id]).encrypt(nonce, plaintext, associated or None)
        return nonce + sealed, self.active_id

    def decrypt(self, blob: bytes, key_id: str, associated: bytes = b"") -> bytes:
        """Decrypt a blob written under ``key_id``."""
        key = self._keys.get(key_id)
        if key is None:
            raise CryptoError(f"unknown key id {key_id}: the key that wrote this row is not in the keyring")
        try:
            return AESGCM(key).decrypt(
                bytes(blob[:_NONCE_BYTES]), bytes(blob[_NONCE_BYTES:]), associated or None
            )
        except Exception as exc:  # cryptography raises InvalidTag without a message
            raise CryptoError("decryption failed: wrong key or tampered data") from exc


def _write_key(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode())


def _read_key_files(key_dir: Path) -> list[bytes]:
    if not key_dir.is_dir():
        return []
    return [base64.b64decode(p.read_text().strip()) for p in sorted(key_dir.glob("*.key"))]


class KeyringCipher:
    """LangGraph's cipher protocol over the keyring, so checkpoints are encrypted at rest too."""

    _PREFIX = "aesgcm-"

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """``(cipher name carrying the key id, nonce + ciphertext)``."""
        blob, key_id = self.keyring.encrypt(plaintext, b"checkpoint")
        return f"{self._PREFIX}{key_id}", blob

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Plaintext of a checkpoint blob."""
        if not ciphername.startswith(self._PREFIX):
            raise CryptoError(f"unsupported checkpoint cipher {ciphername!r}")
        return self.keyring.decrypt(ciphertext, ciphername[len(self._PREFIX) :], b"checkpoint")
