"""The audit chain's pure hashing: canonical JSON, entry and chain hashes, the RFC 6962
Merkle tree hash, and verify_chain over synthetic in-memory rows. No database."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sde.audit import chain

T0 = datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
SIGNING_KEY = Ed25519PrivateKey.generate()
KEY_ID = "test-key"
CHAIN_LENGTH = 12
CHECKPOINTS_AT = (5, 10)

Row = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------
def _fields(sequence: int) -> Row:
    return {
        "sequence": sequence,
        "occurred_at": T0 + timedelta(seconds=sequence),
        "event_type": "governance.audit_log_viewed",
        "actor_id": 7,
        "actor_display": "Ada Lovelace",
        "target_type": "sde.user",
        "target_id": str(100 + sequence),
        "target_display": f"Person {sequence}",
        "project_id": None,
        "data": {"page": sequence, "filters": {"event_type": "", "person": None}},
    }


def _relink(rows: list[Row], start: int = 0) -> None:
    """Recompute entry and chain hashes from ``rows[start]`` on, as a forger who knows the
    algorithm (but not the signing key) would."""
    previous = rows[start - 1]["chain_hash"] if start else chain.GENESIS_CHAIN_HASH
    for row in rows[start:]:
        row["entry_hash"] = chain.entry_hash(row)
        row["chain_hash"] = chain.chain_hash(previous, row["entry_hash"])
        previous = row["chain_hash"]


def _rows(count: int = CHAIN_LENGTH) -> list[Row]:
    rows = [_fields(sequence) for sequence in range(1, count + 1)]
    _relink(rows)
    return rows


def _checkpoint(rows: list[Row], sequence: int) -> chain.CheckpointRow:
    covered = rows[:sequence]
    merkle_root = chain.merkle_root(row["entry_hash"] for row in covered)
    signed_at = T0 + timedelta(hours=1, seconds=sequence)
    message = chain.checkpoint_message(
        sequence=sequence,
        chain_hash=covered[-1]["chain_hash"],
        merkle_root=merkle_root,
        signed_at=signed_at,
        key_id=KEY_ID,
    )
    return chain.CheckpointRow(
        sequence=sequence,
        chain_hash=covered[-1]["chain_hash"],
        merkle_root=merkle_root,
        signed_at=signed_at,
        key_id=KEY_ID,
        signature=SIGNING_KEY.sign(message).hex(),
    )


def _verify_signature(checkpoint: chain.CheckpointRow, message: bytes) -> bool:
    if checkpoint.key_id != KEY_ID:
        return False
    try:
        SIGNING_KEY.public_key().verify(bytes.fromhex(checkpoint.signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _reference_tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + _reference_tree_hash(leaves[:k]) + _reference_tree_hash(leaves[k:])
    ).digest()


def _leaf_hashes(count: int) -> list[str]:
    return [hashlib.sha256(f"event {i}".encode()).hexdigest() for i in range(count)]


# --- canonical JSON and entry hashes ---------------------------------------------------
def test_canonical_json_is_independent_of_key_order():
    one = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "c": None}
    other = {"c": None, "a": {"x": "é", "y": [1, 2]}, "b": 1}

    assert chain.canonical_json(one) == chain.canonical_json(other)
    assert chain.canonical_json(one) == '{"a":{"x":"é","y":[1,2]},"b":1,"c":null}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        chain.canonical_json({"ratio": float("nan")})


def test_entry_hash_is_sha256_of_the_documented_canonical_json():
    # Pinned by hand so an external verifier can reimplement the format from the docs.
    expected_json = (
        '{"actor_display":"Ada Lovelace","actor_id":7,'
        '"data":{"filters":{"event_type":"","person":null},"page":3},'
        '"event_type":"governance.audit_log_viewed",'
        '"occurred_at":"2025-03-01T09:30:03.123456+00:00","project_id":null,'
        '"sequence":3,"target_display":"Person 3","target_id":"103","target_type":"sde.user"}'
    )

    assert chain.entry_hash(_fields(3)) == hashlib.sha256(expected_json.encode()).hexdigest()


def test_entry_hash_ignores_key_order_and_fields_outside_the_hash():
    fields = _fields(3)
    reordered = dict(reversed(list(fields.items())))
    reordered["data"] = dict(reversed(list(fields["data"].items())))
    reordered["entry_hash"] = "not hashed"

    assert chain.entry_hash(reordered) == chain.entry_hash(fields)


def test_entry_hash_is_the_same_for_one_instant_in_any_timezone():
    fields = _fields(3)
    in_new_york = dict(
        fields, occurred_at=fields["occurred_at"].astimezone(timezone(-timedelta(hours=5)))
    )

    assert chain.entry_hash(in_new_york) == chain.entry_hash(fields)


def test_entry_hash_of_naive_timestamp_is_refused():
    fields = dict(_fields(3), occurred_at=datetime(2025, 3, 1, 9, 30))

    with pytest.raises(ValueError, match="timezone-aware"):
        chain.entry_hash(fields)


_ALTERED: dict[str, Callable[[Any], Any]] = {
    "sequence": lambda value: value + 1,
    "occurred_at": lambda value: value + timedelta(microseconds=1),
    "event_type": lambda value: "governance.audit_log_exported",
    "actor_id": lambda value: value + 1,
    "actor_display": lambda value: value + " ",
    "target_type": lambda value: "sde.organisation",
    "target_id": lambda value: value + "0",
    "target_display": lambda value: value.lower(),
    "project_id": lambda value: 1,
    "data": lambda value: {**value, "page": value["page"] + 1},
}


@pytest.mark.parametrize("field", chain.HASHED_FIELDS)
def test_entry_hash_changes_when_hashed_field_changes(field):
    fields = _fields(3)
    altered = dict(fields, **{field: _ALTERED[field](fields[field])})

    assert chain.entry_hash(altered) != chain.entry_hash(fields)


def test_chain_hash_is_sha256_of_raw_previous_and_entry_digests():
    previous, entry = "ab" * 32, "cd" * 32

    assert (
        chain.chain_hash(previous, entry)
        == hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(entry)).hexdigest()
    )


# --- Merkle tree hash ------------------------------------------------------------------
@pytest.mark.parametrize("count", range(71))
def test_merkle_accumulator_root_equals_rfc6962_tree_hash(count):
    leaves = _leaf_hashes(count)
    accumulator = chain.MerkleAccumulator()
    for leaf in leaves:
        accumulator.append(leaf)

    expected = _reference_tree_hash([bytes.fromhex(leaf) for leaf in leaves]).hex()
    assert accumulator.root() == expected
    assert accumulator.size == count
    assert chain.merkle_root(leaves) == expected


def test_merkle_accumulator_root_does_not_disturb_later_appends():
    leaves = _leaf_hashes(40)
    accumulator = chain.MerkleAccumulator()

    roots = []
    for leaf in leaves:
        accumulator.append(leaf)
        roots.append(accumulator.root())

    assert roots == [chain.merkle_root(leaves[:n]) for n in range(1, 41)]


def test_merkle_root_of_no_leaves_is_hash_of_empty_string():
    assert chain.merkle_root([]) == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --- verify_chain ----------------------------------------------------------------------
def test_verify_chain_of_untouched_rows_is_ok():
    rows = _rows()
    checkpoints = [_checkpoint(rows, sequence) for sequence in CHECKPOINTS_AT]

    result = chain.verify_chain(rows, checkpoints, _verify_signature)

    assert result == chain.VerificationResult(
        ok=True,
        events_checked=CHAIN_LENGTH,
        checkpoints_checked=len(CHECKPOINTS_AT),
        merkle_root=chain.merkle_root(row["entry_hash"] for row in rows),
    )


def test_verify_chain_of_no_rows_is_ok():
    result = chain.verify_chain([], [], _verify_signature)

    assert result.ok
    assert result.events_checked == 0


def _alter_data(rows, checkpoints):
    rows[3]["data"] = {**rows[3]["data"], "page": 999}


def _delete_middle(rows, checkpoints):
    del rows[3]


def _duplicate_sequence(rows, checkpoints):
    rows.insert(3, copy.deepcopy(rows[2]))


def _swap_sequences(rows, checkpoints):
    # As the database would return them: ordered by the swapped sequence numbers.
    rows[3]["sequence"], rows[6]["sequence"] = rows[6]["sequence"], rows[3]["sequence"]
    rows.sort(key=lambda row: row["sequence"])


def _swap_positions(rows, checkpoints):
    rows[3], rows[6] = rows[6], rows[3]


def _tamper_chain_hash(rows, checkpoints):
    rows[6]["chain_hash"] = hashlib.sha256(b"forged").hexdigest()


def _append_unlinked_row(rows, checkpoints):
    forged = _fields(CHAIN_LENGTH + 1)
    forged["entry_hash"] = chain.entry_hash(forged)
    forged["chain_hash"] = chain.chain_hash(chain.GENESIS_CHAIN_HASH, forged["entry_hash"])
    rows.append(forged)


def _rewrite_history_consistently(rows, checkpoints):
    rows[2]["actor_display"] = "Someone Else"
    _relink(rows, start=2)


def _tamper_checkpoint_merkle_root(rows, checkpoints):
    checkpoints[1] = replace(checkpoints[1], merkle_root=hashlib.sha256(b"forged").hexdigest())


def _forge_signature(rows, checkpoints):
    signature = bytearray(bytes.fromhex(checkpoints[1].signature))
    signature[0] ^= 0x01
    checkpoints[1] = replace(checkpoints[1], signature=signature.hex())


def _sign_with_unknown_key(rows, checkpoints):
    checkpoints[0] = replace(checkpoints[0], key_id="another-key")


def _truncate_signed_tail(rows, checkpoints):
    del rows[9:]  # events 10.. gone; the checkpoint at 10 still says they existed


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [
        (_alter_data, 4, "altered"),
        (_delete_middle, 4, "sequence 4 is missing"),
        (_duplicate_sequence, 3, "more than once"),
        (_swap_sequences, 4, "altered"),
        (_swap_positions, 4, "sequence 4 is missing"),
        (_tamper_chain_hash, 7, "chain broken"),
        (_append_unlinked_row, CHAIN_LENGTH + 1, "chain broken"),
        (_rewrite_history_consistently, 5, "differ from the signed checkpoint"),
        (_tamper_checkpoint_merkle_root, 10, "differ from the signed checkpoint"),
        (_forge_signature, 10, "invalid signature"),
        (_sign_with_unknown_key, 5, "invalid signature"),
        (_truncate_signed_tail, 10, "signed checkpoint covers up to 10"),
    ],
)
def test_verify_chain_of_tampered_rows_names_first_bad_sequence(tamper, first_bad, reason):
    rows = _rows()
    checkpoints = [_checkpoint(rows, sequence) for sequence in CHECKPOINTS_AT]
    tamper(rows, checkpoints)

    result = chain.verify_chain(rows, checkpoints, _verify_signature)

    assert not result.ok
    assert result.first_bad_sequence == first_bad
    assert reason in result.reason


def test_verify_chain_checks_checkpoints_given_in_any_order():
    rows = _rows()
    checkpoints = [_checkpoint(rows, sequence) for sequence in reversed(CHECKPOINTS_AT)]

    result = chain.verify_chain(rows, checkpoints, _verify_signature)

    assert result.ok
    assert result.checkpoints_checked == len(CHECKPOINTS_AT)
