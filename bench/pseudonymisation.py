"""Pseudonymisation benchmark: what keyed hashing, validation and the vault cost.

    python bench/pseudonymisation.py [--rows N] [--repeat R]

Pure (no Django, no database, no key files: the keys are random bytes made here). On N
distinct, valid synthetic NHS numbers (default 1,000,000; strings as they arrive from a
file) it measures, best of R runs:

  (a) ``system_pseudonyms``: validation, factorising, one ``hmac.digest`` per distinct
      number, mapping back; against a same-run baseline of plain ``hashlib.sha256`` hex
      over the same strings (the unkeyed hash the spec forbids: the floor for any per-value
      hash in Python), and the bare ``hmac.digest`` loop for reference;
  (b) ``valid_nhs_numbers`` (numpy on the digit matrix) against a loop of the scalar
      ``is_valid_nhs_number``;
  (c) the identity vault: ``encrypt_identities`` and ``decrypt_identities`` (AES-256-GCM,
      one AEAD call per record, with validation and the pseudonym bound in as associated
      data) against a same-run baseline of the bare ``AESGCM.encrypt`` / ``decrypt`` loop
      over the same plaintexts with a fixed nonce and no associated data (the floor: the
      AEAD calls alone).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sde.data.pseudonymisation import (
    is_valid_nhs_number,
    system_pseudonyms,
    valid_nhs_numbers,
)
from sde.data.vault import decrypt_identities, encrypt_identities

SEED = 20250301


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="R, best of (default 3)")
    return parser.parse_args()


def synthetic_nhs_numbers(count: int, seed: int = SEED) -> list[str]:
    """``count`` distinct valid NHS numbers: random nine-digit stems plus check digit."""
    rng = np.random.default_rng(seed)
    stems = rng.choice(900_000_000, size=int(count * 1.2) + 100, replace=False) + 100_000_000
    digits = (stems[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check = 11 - (digits @ np.arange(10, 1, -1)) % 11
    check[check == 11] = 0
    keep = check != 10
    numbers = (stems[keep] * 10 + check[keep])[:count]
    if len(numbers) < count:
        raise SystemExit("could not draw enough distinct numbers")
    return numbers.astype("U10").tolist()


def _best(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f} rows/s  ({seconds:6.2f} s)"


def main() -> None:
    args = _parse_args()
    rows, repeat = args.rows, args.repeat
    print(__doc__.split("\n\n")[0])
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"cryptography {cryptography.__version__} ({backend.openssl_version_text()}), "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    numbers = synthetic_nhs_numbers(rows)
    series = pd.Series(numbers)
    print(
        f"data: {rows:,} distinct valid NHS numbers (10-character strings, "
        f"{series.dtype} dtype), generated in {time.perf_counter() - started:.2f} s; "
        f"best of {repeat} runs\n"
    )
    system_key, vault_key = secrets.token_bytes(32), secrets.token_bytes(32)

    print("(a) keyed pseudonyms")
    t_sp, sps = _best(repeat, lambda: system_pseudonyms(series, system_key))
    t_sha, _ = _best(repeat, lambda: [hashlib.sha256(n.encode()).hexdigest() for n in numbers])
    t_hmac, _ = _best(
        repeat, lambda: [hmac.digest(system_key, n.encode(), "sha256").hex() for n in numbers]
    )
    print(f"  system_pseudonyms (HMAC-SHA256)   {_rate(rows, t_sp)}")
    print(f"  bare hmac.digest loop             {_rate(rows, t_hmac)}")
    print(f"  baseline: plain hashlib.sha256    {_rate(rows, t_sha)}")
    print(f"  system_pseudonyms / sha256 time   {t_sp / t_sha:.2f}x\n")

    print("(b) Modulus 11 validation")
    t_vec, valid = _best(repeat, lambda: valid_nhs_numbers(series))
    t_loop, _ = _best(repeat, lambda: [is_valid_nhs_number(n) for n in numbers])
    assert bool(valid.all())
    print(f"  valid_nhs_numbers (vectorised)    {_rate(rows, t_vec)}")
    print(f"  is_valid_nhs_number loop          {_rate(rows, t_loop)}")
    print(f"  speed-up                          {t_loop / t_vec:.1f}x\n")

    print("(c) identity vault (AES-256-GCM)")
    t_enc, records = _best(
        repeat, lambda: encrypt_identities(sps, series, key=vault_key, key_version=1)
    )
    t_dec, decrypted = _best(repeat, lambda: decrypt_identities(records, keys={1: vault_key}))
    assert decrypted.tolist() == numbers
    cipher, nonce = AESGCM(vault_key), secrets.token_bytes(12)
    plaintexts = [n.encode("ascii") for n in numbers]
    t_bare_enc, sealed = _best(repeat, lambda: [cipher.encrypt(nonce, p, None) for p in plaintexts])
    t_bare_dec, _ = _best(repeat, lambda: [cipher.decrypt(nonce, c, None) for c in sealed])
    print(f"  encrypt_identities                {_rate(rows, t_enc)}")
    print(f"  baseline: bare AESGCM.encrypt     {_rate(rows, t_bare_enc)}")
    print(f"  encrypt / baseline time           {t_enc / t_bare_enc:.2f}x")
    print(f"  decrypt_identities                {_rate(rows, t_dec)}")
    print(f"  baseline: bare AESGCM.decrypt     {_rate(rows, t_bare_dec)}")
    print(f"  decrypt / baseline time           {t_dec / t_bare_dec:.2f}x")


if __name__ == "__main__":
    main()
