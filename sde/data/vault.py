"""Encryption for the identity vault (``SP -> NHS number``), the only route back from a
pseudonym to a person. Pure: keys are passed in by the re-identification service, which
loads them from ``sde.keys``; nothing here reads settings or the environment.

Each record is AES-256-GCM with a fresh random 96-bit nonce, stored as
``nonce || ciphertext+tag`` next to its system pseudonym and key version. The associated
data binds the ciphertext to both, so a ciphertext copied to another pseudonym's row, or
relabelled with another key version, fails authentication instead of decrypting to the
wrong person. Every failure raises ``VaultDecryptionError``: we fail closed, never return a
partial column.

A record set is a DataFrame with the columns ``system_pseudonym``, ``ciphertext`` (bytes)
and ``key_version`` (int); the index is carried through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sde.data.pseudonymisation import normalise_nhs_numbers, valid_nhs_numbers
from sde.exceptions import SDEError

KEY_BYTES = 32  # AES-256 only
# 96-bit nonces, random per record. NIST SP 800-38D allows 2^32 random-nonce encryptions
# per key; a national population's vault is far below that, and rotation resets the count.
NONCE_BYTES = 12
TAG_BYTES = 16
SYSTEM_PSEUDONYM = "system_pseudonym"
CIPHERTEXT = "ciphertext"
KEY_VERSION = "key_version"
COLUMNS = (SYSTEM_PSEUDONYM, CIPHERTEXT, KEY_VERSION)
_AAD_LABEL = "sde.identity-vault"
_PSEUDONYM_PATTERN = r"[0-9a-f]{64}"


class VaultDecryptionError(SDEError):
    """A vault record did not authenticate: wrong key, tampered or truncated ciphertext,
    or a ciphertext moved to another row or key version. Nothing is returned."""


def _aad(system_pseudonym: str, key_version: int) -> bytes:
    return f"{_AAD_LABEL}|{system_pseudonym}|v{key_version}".encode("ascii")


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a vault key must be {KEY_BYTES} bytes (AES-256)")
    return AESGCM(key)


def _check_version(key_version: int) -> None:
    if isinstance(key_version, bool) or not isinstance(key_version, int) or key_version < 1:
        raise ValueError("key_version must be a positive integer")


def encrypt_identities(
    system_pseudonyms: pd.Series, nhs_numbers: pd.Series, *, key: bytes, key_version: int
) -> pd.DataFrame:
    """Encrypt each NHS number under ``key``, bound to its system pseudonym and version.

    The two Series are aligned by position and must be the same length; the result keeps
    the pseudonyms' index. Raises ``ValueError`` for a bad key or version, a pseudonym that
    is not 64 lower-case hex characters or appears twice, or an invalid NHS number (counts
    only in the message, never values).
    """
    cipher = _cipher(key)
    _check_version(key_version)
    if len(system_pseudonyms) != len(nhs_numbers):
        raise ValueError("system_pseudonyms and nhs_numbers must be the same length")
    pseudonyms = system_pseudonyms.astype("string")
    bad = ~pseudonyms.str.fullmatch(_PSEUDONYM_PATTERN).fillna(False).astype(bool)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} values are not system pseudonyms")
    if pseudonyms.duplicated().any():  # the vault holds one NHS number per pseudonym
        raise ValueError("system pseudonyms must be distinct")
    invalid = ~valid_nhs_numbers(nhs_numbers)
    if invalid.any():
        raise ValueError(f"{int(invalid.sum())} values are not valid NHS numbers")
    plaintexts = normalise_nhs_numbers(nhs_numbers).tolist()
    sps = pseudonyms.tolist()
    # One urandom call for every nonce; the AES-GCM call itself is per record (the
    # sanctioned loop: cryptography's AEAD has no batch API), one reused cipher object.
    nonces = os.urandom(NONCE_BYTES * len(sps))
    ciphertexts = []
    for position, (sp, number) in enumerate(zip(sps, plaintexts, strict=True)):
        nonce = nonces[position * NONCE_BYTES : (position + 1) * NONCE_BYTES]
        ciphertexts.append(
            nonce + cipher.encrypt(nonce, number.encode("ascii"), _aad(sp, key_version))
        )
    return pd.DataFrame(
        {
            SYSTEM_PSEUDONYM: pseudonyms.to_numpy(),
            CIPHERTEXT: pd.Series(ciphertexts, index=system_pseudonyms.index, dtype=object),
            KEY_VERSION: np.full(len(sps), key_version, dtype=np.int64),
        },
        index=system_pseudonyms.index,
    )


def decrypt_identities(records: pd.DataFrame, *, keys: Mapping[int, bytes]) -> pd.Series:
    """The NHS numbers (10-digit strings) for ``records``, indexed like them.

    ``keys`` maps key version to key (a ``KeyRing.keys`` works), so a vault part-way
    through rotation can be read. Raises ``VaultDecryptionError`` if any record lacks a
    key for its version, is malformed, or fails authentication; no partial result.
    """
    missing = set(COLUMNS) - set(records.columns)
    if missing:
        raise VaultDecryptionError(f"records lack the columns {sorted(missing)}")
    ciphers: dict[int, AESGCM] = {}
    numbers = []
    rows = zip(
        records[SYSTEM_PSEUDONYM].tolist(),
        records[CIPHERTEXT].tolist(),
        records[KEY_VERSION].tolist(),
        strict=True,
    )
    for position, (sp, blob, version) in enumerate(rows):
        if version not in ciphers:
            if version not in keys:
                raise VaultDecryptionError(f"no vault key for version {version}")
            ciphers[version] = _cipher(keys[version])
        if isinstance(blob, bytearray | memoryview):  # PostgreSQL bytea arrives as memoryview
            blob = bytes(blob)
        if not isinstance(blob, bytes) or len(blob) < NONCE_BYTES + TAG_BYTES:
            raise VaultDecryptionError(f"record at position {position} is malformed")
        try:
            plain = ciphers[version].decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(str(sp), int(version))
            )
        except InvalidTag:
            raise VaultDecryptionError(
                f"record at position {position} failed authentication (wrong key, "
                "tampered ciphertext, or moved to another row or key version)"
            ) from None
        numbers.append(plain.decode("ascii"))
    return pd.Series(numbers, index=records.index, dtype="string")


def reencrypt(
    records: pd.DataFrame, old_key: bytes, new_key: bytes, new_version: int
) -> pd.DataFrame:
    """Key rotation: decrypt every record with ``old_key`` (under each record's own
    version) and encrypt it afresh, with new nonces, under ``new_key`` as ``new_version``.

    Afterwards the old key is not needed for these records. Raises ``ValueError`` unless
    ``new_version`` is greater than every record's version (rotation moves forward, and a
    version number always names one key), and ``VaultDecryptionError`` if any record does
    not decrypt with ``old_key``; nothing is returned in that case.
    """
    _check_version(new_version)
    versions = records[KEY_VERSION].unique().tolist() if len(records) else []
    if any(int(version) >= new_version for version in versions):
        raise ValueError("new_version must be greater than every record's key version")
    numbers = decrypt_identities(records, keys={int(version): old_key for version in versions})
    return encrypt_identities(
        records[SYSTEM_PSEUDONYM], numbers, key=new_key, key_version=new_version
    )


def seal(plaintext: bytes, *, key: bytes, key_version: int, label: str) -> bytes:
    """``nonce || ciphertext+tag`` of ``plaintext`` under ``key``, bound to ``label`` (what
    the blob is, for example a re-identified list's request) and the key version."""
    cipher = _cipher(key)
    _check_version(key_version)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, f"{label}|v{key_version}".encode())


def unseal(blob: bytes, *, key: bytes, key_version: int, label: str) -> bytes:
    """The plaintext ``seal`` was given. ``VaultDecryptionError`` for a wrong key, label or
    version, or a changed blob; nothing is returned then."""
    cipher = _cipher(key)
    _check_version(key_version)
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise VaultDecryptionError("the sealed data is malformed")
    try:
        return cipher.decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{label}|v{key_version}".encode()
        )
    except InvalidTag:
        raise VaultDecryptionError(
            "the sealed data failed authentication (wrong key, or changed)"
        ) from None
