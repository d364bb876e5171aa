"""``check_output``, the one entry point: it picks the rules by what the file is, never
raises on bad input, audits a researcher's own blank cells against declared totals, and
mitigates; and the ``check_output`` management command that prints the verdict."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from outputs.sdc import PRESETS, Status
from outputs.sdc.check import check_output
from outputs.sdc.ledger import Ledger, LedgerTable
from sde.phm.evidence import ResultTable, count_table

ACRO = PRESETS["acro-default"]


def people(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    """One row per person, ``counts`` people per (sex, band)."""
    rows, n = [], 0
    for (sex, band), k in counts.items():
        rows += [{"person_id": f"p{n + i}", "sex": sex, "band": band} for i in range(k)]
        n += k
    return pd.DataFrame(rows)


def files(result: ResultTable, **context: object) -> tuple[bytes, bytes]:
    return (result.frame.to_csv(index=False).encode(),
            json.dumps(result.sidecar(**context)).encode())  # fmt: skip


SAFE = {("F", "young"): 40, ("F", "old"): 30, ("M", "young"): 25, ("M", "old"): 35}


def test_a_safe_table_passes_with_a_note_that_differencing_was_not_checked():
    csv, evidence = files(count_table(people(SAFE), name="t", title="t", by=["sex", "band"]))

    verdict = check_output("t.csv", csv, policy=ACRO, evidence=evidence)

    assert (verdict.kind, verdict.status, verdict.outcome) == ("table", Status.PASS, Status.PASS)
    assert verdict.mitigation is None
    assert any("X2" in note for note in verdict.notes)


def test_a_small_cell_fails_and_suppression_makes_the_outcome_review():
    counts = {**SAFE, ("M", "old"): 4}
    csv, evidence = files(count_table(people(counts), name="t", title="t", by=["sex", "band"]))

    verdict = check_output("t.csv", csv, policy=ACRO, evidence=evidence)

    assert verdict.status is Status.FAIL and verdict.rules()["T1"] is Status.FAIL
    assert verdict.mitigation is not None and verdict.mitigation.status is Status.PASS
    assert verdict.outcome is Status.REVIEW


def table_with_totals(blank: bool) -> tuple[bytes, bytes]:
    """A 2x2 table with its margins declared; the small cell is left blank by hand."""
    frame = pd.DataFrame({
        "sex": ["F", "F", "M", "M", "Total", "Total", "F", "M", "Total"],
        "band": ["young", "old", "young", "old", "young", "old", "Total", "Total", "Total"],
        "people": [40, 30, 25, 4, 65, 34, 70, 29, 99],
    })  # fmt: skip
    persons = frame[["people"]].copy()
    if blank:
        frame["people"] = frame["people"].astype("float").where(frame.index != 3)
    result = ResultTable(name="t", title="t", frame=frame, dimensions=("sex", "band"),
                         statistics={"people": "count"}, persons=persons)  # fmt: skip
    csv = frame.to_csv(index=False).encode()
    return csv, json.dumps(result.sidecar(totals={"sex": "Total", "band": "Total"})).encode()


def test_a_cell_blanked_by_hand_but_given_back_by_the_totals_fails_the_audit():
    csv, evidence = table_with_totals(blank=True)

    verdict = check_output("t.csv", csv, policy=ACRO, evidence=evidence)

    [x1] = [f for f in verdict.findings if f.rule == "X1"]
    assert (x1.status, x1.row, x1.evidence["low"], x1.evidence["high"]) == (Status.FAIL, 3, 4, 4)
    assert "T1" not in verdict.rules()  # the blank cell itself is not published


def test_differencing_runs_when_the_ledger_is_given():
    everyone = people(SAFE)
    fewer = everyone.iloc[3:]  # the same people but three
    csv, evidence = files(count_table(fewer, name="t", title="t", by=["sex"]))
    ledger = Ledger(
        candidate=LedgerTable.from_rows(fewer, ["sex"], file="t.csv"),
        released=[LedgerTable.from_rows(everyone, ["sex"], file="earlier.csv", release="1")],
    )

    verdict = check_output("t.csv", csv, policy=ACRO, evidence=evidence, ledger=ledger)

    assert verdict.rules().get("X2") is Status.FAIL and not verdict.notes


@pytest.mark.parametrize(
    ("name", "data", "evidence", "kind", "status"),
    [
        ("t.csv", b"sex,people\nF,40\n", None, "unverifiable", Status.REVIEW),
        ("t.csv", b"sex,people\nF,40\n", b"{not json", "unverifiable", Status.FAIL),
        ("t.csv", b"\xff\xfe\x00garbage", None, "blocked", Status.FAIL),
        ("t.parquet", b"PAR1....PAR1", None, "blocked", Status.FAIL),
        ("renamed.csv", b"PAR1....PAR1", None, "blocked", Status.FAIL),
        ("t.csv", b"a,b\n1,2\n", b'{"kind": "survival"}', "unverifiable", Status.FAIL),
        ("t.png", b"\x89PNG\r\n\x1a\n", None, "blocked", Status.FAIL),
        ("notes.txt", b"what we found", None, "unverifiable", Status.REVIEW),
    ],
    ids=["no-evidence", "bad-evidence", "not-utf8", "parquet", "renamed-parquet",
         "survival-without-steps", "truncated-png", "free-text"],
)  # fmt: skip
def test_bad_or_unverifiable_files_get_a_verdict_never_an_exception(
    name, data, evidence, kind, status
):
    verdict = check_output(name, data, policy=ACRO, evidence=evidence)

    assert (verdict.kind, verdict.status) == (kind, status)
    assert all(f.message for f in verdict.findings)


def test_random_bytes_never_pass():
    rng = np.random.default_rng(3)
    for size in (0, 1, 10, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert check_output("x.csv", data, policy=ACRO).status is not Status.PASS


# --- The management command ------------------------------------------------------------
def write(folder: Path, result: ResultTable) -> Path:
    csv, evidence = files(result)
    (folder / f"{result.name}.csv").write_bytes(csv)
    (folder / f"{result.name}.evidence.json").write_bytes(evidence)
    return folder / f"{result.name}.csv"


def command(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("check_output", *args, stdout=out)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, json.loads(out.getvalue())


def test_the_command_prints_the_verdict_as_json_and_exits_by_outcome(tmp_path):
    safe = write(tmp_path, count_table(people(SAFE), name="safe", title="s", by=["sex"]))
    small = write(tmp_path, count_table(people({("F", "x"): 4, ("M", "x"): 30}), name="small",
                                        title="s", by=["sex"]))  # fmt: skip

    assert command(str(safe))[0] == 0
    code, verdict = command(str(small))
    assert code == 1 and verdict["status"] == "fail" and verdict["outcome"] == "review"
    assert verdict["rules"]["T1"] == "fail" and verdict["policy"] == "acro-default"
    assert verdict["findings"][0]["evidence"] == {"persons": 4, "threshold": 10}


def test_the_command_takes_the_policy_as_json_or_a_file(tmp_path):
    small = write(tmp_path, count_table(people({("F", "x"): 4, ("M", "x"): 30}), name="small",
                                        title="s", by=["sex"]))  # fmt: skip
    rules = tmp_path / "rules.json"
    rules.write_text('{"preset": "datashield-3"}')

    assert command(str(small), "--rules", str(rules))[1]["status"] == "pass"
    code, verdict = command(str(small), "--rules", '{"threshold": 3}')
    assert code == 0 and verdict["policy"] == "acro-default+custom" and verdict["status"] == "pass"


def test_a_table_without_evidence_gets_what_can_be_checked_and_review(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("sex,people\nF,4\nM,30\n")

    code, verdict = command(str(path))

    assert code == 1 and verdict["kind"] == "unverifiable" and verdict["status"] == "review"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing.csv"], "no such file"), (["x.csv", "--rules", '{"preset": "nope"}'], "nope"),
     (["x.csv", "--rules", '{"threshold": 0}'], "threshold")],
)  # fmt: skip
def test_the_command_refuses_bad_arguments_clearly(tmp_path, monkeypatch, args, message):
    from django.core.management.base import CommandError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(CommandError, match=message):
        call_command("check_output", *args, stdout=io.StringIO())
