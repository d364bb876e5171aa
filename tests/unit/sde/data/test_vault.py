import pandas as pd
import pytest

from sde.data.pseudonymisation import system_pseudonyms
from sde.data.vault import (
    CIPHERTEXT,
    KEY_VERSION,
    NONCE_BYTES,
    SYSTEM_PSEUDONYM,
    VaultDecryptionError,
    decrypt_identities,
    encrypt_identities,
    reencrypt,
)

SYSTEM_KEY = bytes(range(32))
VAULT_KEY = bytes(range(50, 82))
OTHER_KEY = bytes(range(90, 122))
NHS_NUMBERS = pd.Series(["9434765919", "401 023 2137", "9876543210"], index=[7, 8, 9])


def _vault(key: bytes = VAULT_KEY, version: int = 1) -> pd.DataFrame:
    sps = system_pseudonyms(NHS_NUMBERS, SYSTEM_KEY)
    return encrypt_identities(sps, NHS_NUMBERS, key=key, key_version=version)


def test_vault_round_trips_with_its_key() -> None:
    records = _vault()

    numbers = decrypt_identities(records, keys={1: VAULT_KEY})

    assert numbers.tolist() == ["9434765919", "4010232137", "9876543210"]
    assert list(numbers.index) == [7, 8, 9]


def test_vault_records_hold_pseudonym_nonce_ciphertext_and_version_but_no_plaintext() -> None:
    records = _vault(version=3)

    assert list(records.columns) == [SYSTEM_PSEUDONYM, CIPHERTEXT, KEY_VERSION]
    assert records[KEY_VERSION].tolist() == [3, 3, 3]
    blobs = records[CIPHERTEXT].tolist()
    assert all(len(blob) == NONCE_BYTES + 10 + 16 for blob in blobs)  # nonce, digits, tag
    assert not any(b"9434765919" in blob for blob in blobs)
    assert len({blob[:NONCE_BYTES] for blob in blobs}) == 3  # a fresh nonce per record


def test_encrypting_the_same_number_twice_gives_different_ciphertexts() -> None:
    first, second = _vault(), _vault()

    assert first[CIPHERTEXT].iloc[0] != second[CIPHERTEXT].iloc[0]


def test_vault_refuses_a_wrong_key() -> None:
    with pytest.raises(VaultDecryptionError, match="failed authentication"):
        decrypt_identities(_vault(), keys={1: OTHER_KEY})


def test_vault_refuses_a_record_whose_version_has_no_key() -> None:
    with pytest.raises(VaultDecryptionError, match="no vault key for version 1"):
        decrypt_identities(_vault(), keys={2: VAULT_KEY})


@pytest.mark.parametrize("position", [0, NONCE_BYTES, NONCE_BYTES + 5, -1])
def test_vault_refuses_a_tampered_ciphertext(position: int) -> None:
    records = _vault()
    blob = bytearray(records[CIPHERTEXT].iloc[1])
    blob[position] ^= 0x01
    records.loc[8, CIPHERTEXT] = bytes(blob)

    with pytest.raises(VaultDecryptionError, match="position 1 failed authentication"):
        decrypt_identities(records, keys={1: VAULT_KEY})


@pytest.mark.parametrize("blob", [b"", b"\0" * 27, "not bytes", None])
def test_vault_refuses_a_truncated_or_malformed_record(blob: object) -> None:
    records = _vault()
    records[CIPHERTEXT] = [records[CIPHERTEXT].iloc[0], blob, records[CIPHERTEXT].iloc[2]]

    with pytest.raises(VaultDecryptionError, match="position 1 is malformed"):
        decrypt_identities(records, keys={1: VAULT_KEY})


def test_vault_refuses_a_ciphertext_moved_to_another_pseudonyms_row() -> None:
    records = _vault()
    swapped = records[CIPHERTEXT].tolist()
    swapped[0], swapped[1] = swapped[1], swapped[0]
    records[CIPHERTEXT] = swapped

    with pytest.raises(VaultDecryptionError, match="position 0 failed authentication"):
        decrypt_identities(records, keys={1: VAULT_KEY})


def test_vault_refuses_a_record_relabelled_with_another_key_version() -> None:
    records = _vault()
    records[KEY_VERSION] = 2

    with pytest.raises(VaultDecryptionError, match="failed authentication"):
        decrypt_identities(records, keys={1: VAULT_KEY, 2: VAULT_KEY})


def test_vault_accepts_bytea_as_memoryview() -> None:
    records = _vault()
    records[CIPHERTEXT] = [memoryview(blob) for blob in records[CIPHERTEXT]]

    assert decrypt_identities(records, keys={1: VAULT_KEY}).iloc[0] == "9434765919"


def test_vault_refuses_records_missing_a_column() -> None:
    with pytest.raises(VaultDecryptionError, match="lack the columns"):
        decrypt_identities(_vault().drop(columns=[KEY_VERSION]), keys={1: VAULT_KEY})


def test_encrypt_refuses_invalid_nhs_numbers_and_non_pseudonyms() -> None:
    sps = system_pseudonyms(NHS_NUMBERS, SYSTEM_KEY)
    bad_numbers = pd.Series(["9434765919", "9434765918", "9876543210"])

    with pytest.raises(ValueError, match="1 values are not valid NHS numbers"):
        encrypt_identities(sps, bad_numbers, key=VAULT_KEY, key_version=1)
    with pytest.raises(ValueError, match="not system pseudonyms"):
        encrypt_identities(NHS_NUMBERS, NHS_NUMBERS, key=VAULT_KEY, key_version=1)


def test_encrypt_refuses_a_pseudonym_twice() -> None:
    sps = system_pseudonyms(pd.Series(["9434765919"] * 2), SYSTEM_KEY)

    with pytest.raises(ValueError, match="must be distinct"):
        encrypt_identities(
            sps, pd.Series(["9434765919", "4010232137"]), key=VAULT_KEY, key_version=1
        )


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(24), bytes(33)])
def test_encrypt_accepts_only_aes_256_keys(key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        _vault(key=key)


@pytest.mark.parametrize("version", [0, -1, True])
def test_encrypt_refuses_a_version_that_is_not_positive(version: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        _vault(version=version)


def test_reencrypt_moves_every_record_to_the_new_key_and_version() -> None:
    old = _vault(key=VAULT_KEY, version=1)

    rotated = reencrypt(old, old_key=VAULT_KEY, new_key=OTHER_KEY, new_version=2)

    assert rotated[KEY_VERSION].tolist() == [2, 2, 2]
    assert rotated[SYSTEM_PSEUDONYM].tolist() == old[SYSTEM_PSEUDONYM].tolist()
    assert list(rotated.index) == list(old.index)
    # The old key is no longer needed, and no longer works.
    assert decrypt_identities(rotated, keys={2: OTHER_KEY}).tolist() == [
        "9434765919",
        "4010232137",
        "9876543210",
    ]
    with pytest.raises(VaultDecryptionError):
        decrypt_identities(rotated, keys={2: VAULT_KEY})


def test_reencrypt_with_the_wrong_old_key_fails_closed() -> None:
    with pytest.raises(VaultDecryptionError):
        reencrypt(_vault(), old_key=OTHER_KEY, new_key=OTHER_KEY, new_version=2)


@pytest.mark.parametrize("new_version", [1, 2])
def test_reencrypt_refuses_to_go_backwards_or_reuse_a_version(new_version: int) -> None:
    with pytest.raises(ValueError, match="greater than every record's key version"):
        reencrypt(_vault(version=2), old_key=VAULT_KEY, new_key=OTHER_KEY, new_version=new_version)


def test_empty_vault_round_trips() -> None:
    empty = encrypt_identities(
        pd.Series([], dtype="string"), pd.Series([], dtype="string"), key=VAULT_KEY, key_version=1
    )

    assert decrypt_identities(empty, keys={1: VAULT_KEY}).empty
    assert reencrypt(empty, old_key=VAULT_KEY, new_key=OTHER_KEY, new_version=2).empty
