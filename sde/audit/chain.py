"""Pure hashing for the audit chain: canonical JSON, entry and chain hashes, RFC 6962
Merkle tree hashes, and chain verification over an iterable of rows. No ORM here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_CHAIN_HASH = "0" * 64
HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "event_type",
    "actor_id",
    "actor_display",
    "target_type",
    "target_id",
    "target_display",
    "project_id",
    "data",
)
# Every stored field of an event, in the order exports and the API present them.
EVENT_FIELDS = (*HASHED_FIELDS, "entry_hash", "chain_hash")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the event's fields (``HASHED_FIELDS``)."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["occurred_at"] = canonical_time(payload["occurred_at"])
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def chain_hash(previous_chain_hash: str, this_entry_hash: str) -> str:
    """SHA-256(previous chain_hash || entry_hash), over the raw 32-byte digests."""
    return hashlib.sha256(
        bytes.fromhex(previous_chain_hash) + bytes.fromhex(this_entry_hash)
    ).hexdigest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """Incremental RFC 6962 tree hash: leaf = H(0x00 || entry_hash), node = H(0x01||l||r).

    Keeps one root per perfect subtree (the binary decomposition of the leaf count), so
    appending is amortised O(1) and the root at any size is O(log n).
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, root), sizes decreasing
        self.size = 0

    def append(self, entry_hash_hex: str) -> None:
        size, digest = 1, hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash_hex)).digest()
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, digest = left_size + size, _node(left, digest)
        self._stack.append((size, digest))
        self.size += 1

    def root(self) -> str:
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = _node(left, digest)
        return digest.hex()


def merkle_root(entry_hashes: Iterable[str]) -> str:
    accumulator = MerkleAccumulator()
    for value in entry_hashes:
        accumulator.append(value)
    return accumulator.root()


def checkpoint_message(
    *, sequence: int, chain_hash: str, merkle_root: str, signed_at: datetime, key_id: str
) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return canonical_json(
        {
            "chain_hash": chain_hash,
            "key_id": key_id,
            "merkle_root": merkle_root,
            "sequence": sequence,
            "signed_at": canonical_time(signed_at),
            "tree_size": sequence,
        }
    )


@dataclass(frozen=True)
class CheckpointRow:
    sequence: int
    chain_hash: str
    merkle_root: str
    signed_at: datetime
    key_id: str
    signature: str


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_sequence: int | None = None
    reason: str = ""
    merkle_root: str = ""  # of the events checked, when ok


def verify_chain(
    rows: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[CheckpointRow],
    verify_signature: Any,
) -> VerificationResult:
    """Recompute every entry hash, the chain and every checkpoint, in sequence order.

    ``rows`` yields mappings with ``HASHED_FIELDS`` plus ``entry_hash`` and
    ``chain_hash``, ordered by sequence. ``verify_signature(checkpoint, message)``
    returns True when the signature is good under a trusted key. Stops at the first
    problem and names the first bad sequence number.
    """
    pending = sorted(checkpoints, key=lambda cp: cp.sequence)
    merkle = MerkleAccumulator()
    previous_chain = GENESIS_CHAIN_HASH
    expected = 1
    checked = 0
    cp_checked = 0

    def fail(sequence: int, reason: str) -> VerificationResult:
        return VerificationResult(False, checked, cp_checked, sequence, reason)

    for row in rows:
        sequence = row["sequence"]
        if sequence < expected:
            return fail(sequence, f"sequence {sequence} appears more than once or out of order")
        if sequence > expected:
            return fail(expected, f"sequence {expected} is missing")
        computed_entry = entry_hash(row)
        if computed_entry != row["entry_hash"]:
            return fail(sequence, f"event {sequence} was altered (entry hash mismatch)")
        computed_chain = chain_hash(previous_chain, computed_entry)
        if computed_chain != row["chain_hash"]:
            return fail(sequence, f"chain broken at event {sequence} (chain hash mismatch)")
        merkle.append(computed_entry)
        previous_chain = computed_chain
        checked += 1
        while pending and pending[0].sequence == sequence:
            checkpoint = pending.pop(0)
            if checkpoint.chain_hash != computed_chain or checkpoint.merkle_root != merkle.root():
                return fail(sequence, f"events up to {sequence} differ from the signed checkpoint")
            message = checkpoint_message(
                sequence=checkpoint.sequence,
                chain_hash=checkpoint.chain_hash,
                merkle_root=checkpoint.merkle_root,
                signed_at=checkpoint.signed_at,
                key_id=checkpoint.key_id,
            )
            if not verify_signature(checkpoint, message):
                return fail(sequence, f"checkpoint at {sequence} has an invalid signature")
            cp_checked += 1
        expected += 1
    if pending:
        return fail(
            expected,
            f"events from {expected} are missing (a signed checkpoint "
            f"covers up to {pending[-1].sequence})",
        )
    return VerificationResult(True, checked, cp_checked, merkle_root=merkle.root())
