"""X2 differencing against earlier releases, and the ledger of person sets it reads.

People are project pseudonyms (64 hex characters) as in an extract. The checked table is
read as the checker reads it: ``count_table`` on person-level rows, its CSV and evidence
sidecar through ``table_evidence``; its person sets and the earlier releases' are built
with ``LedgerTable.from_rows`` on the same kind of rows.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outputs.sdc.evidence import TableEvidence, read_table, table_evidence
from outputs.sdc.ledger import Ledger, differencing
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Status
from sde.phm.evidence import count_table
from sde.phm.ledger import LedgerTable, person_hashes

DEFAULT = PRESETS["acro-default"]


def pseudonyms(first: int, count: int) -> list[str]:
    """``count`` distinct project pseudonyms, numbered from ``first``."""
    return [hashlib.sha256(f"person {k}".encode()).hexdigest() for k in range(first, first + count)]


def rows(groups: dict[str, range], dimension: str = "band") -> pd.DataFrame:
    """One row per person: ``groups[value]`` numbers the people with that ``dimension``."""
    return pd.DataFrame(
        [(p, value) for value, people in groups.items()
         for p in pseudonyms(people.start, len(people))],
        columns=["person_id", dimension],
    )  # fmt: skip


def released(data: pd.DataFrame, by: list[str], **key: str) -> LedgerTable:
    fields = {"release": "release 1", "file": "earlier.csv", "project": "P1", **key}
    return LedgerTable.from_rows(data, by, **fields)


def checked(data: pd.DataFrame, by: list[str]) -> tuple[TableEvidence, LedgerTable]:
    """The table being checked as the checker reads it, and its person sets."""
    result = count_table(data, name="new", title="new", by=by)
    sidecar = json.loads(json.dumps(result.sidecar(extract="e1", cohort_hash="c1")))
    table = table_evidence(read_table(result.frame.to_csv(index=False).encode(), "new.csv"),
                           sidecar, "new.csv")  # fmt: skip
    return table, LedgerTable.from_rows(data, by, release="", file="new.csv", project="P1")


def check(new: pd.DataFrame, by: list[str], *earlier: LedgerTable, policy=DEFAULT):
    table, candidate = checked(new, by)
    return differencing(table, Ledger(candidate=candidate, released=earlier), policy)


# --- Nested populations ---------------------------------------------------------------
@pytest.mark.parametrize(("removed", "fails"), [(1, True), (3, True), (9, True), (10, False),
                                                (11, False)])  # fmt: skip
def test_a_cohort_released_again_minus_a_few_people_fails_below_the_threshold(removed, fails):
    # The whole cohort by sex now; earlier, the cohort without ``removed`` people by
    # region. No cell nests in another, but the totals differ by exactly those people.
    cohort = rows({"F": range(0, 100), "M": range(100, 200)}, "sex")
    cohort["region"] = np.where(np.arange(200) % 3 == 0, "North", "South")
    earlier = released(cohort.iloc[removed:], ["region"])

    findings = check(cohort, ["sex"], earlier)

    expected = [(Status.FAIL, "population", removed)] if fails else []
    assert [(f.status, f.evidence["derivation"], f.evidence["derived_persons"])
            for f in findings] == expected  # fmt: skip
    if fails:
        assert findings[0].evidence["persons"] == 200
        assert findings[0].evidence["earlier_persons"] == 200 - removed
        assert findings[0].message == (
            f"this table (200 people) holds everyone in earlier.csv in release 1 "
            f"({200 - removed} people) and {removed} more (nested populations); a group of "
            "fewer than 10 people must not be derivable"
        )


def test_people_removed_from_one_cell_fail_as_that_cells_difference():
    cohort = rows({"0-19": range(0, 40), "20-39": range(40, 80)})
    earlier = released(cohort.iloc[3:], ["band"])  # three people aged 0-19 gone

    [finding] = check(cohort, ["band"], earlier)

    assert finding.evidence["derivation"] == "nested"
    assert finding.evidence["derived_persons"] == 3
    assert (finding.row, finding.column, finding.cell) == (0, "people", {"band": "0-19"})
    assert finding.message.startswith(
        "subtracting band = 0-19 in earlier.csv in release 1 (37 people) from this "
        "table's band = 0-19 (40 people) leaves a group of 3"
    )


def test_the_threshold_is_the_policys():
    cohort = rows({"0-19": range(0, 40), "20-39": range(40, 80)})
    earlier = released(cohort.iloc[5:], ["band"])

    assert check(cohort, ["band"], earlier, policy=PRESETS["datashield-3"]) == []
    assert len(check(cohort, ["band"], earlier)) == 1


# --- Overlapping bandings -------------------------------------------------------------
def ages(aged_20_to_24: int) -> pd.DataFrame:
    """People by single year band: 40 aged 0-19, ``aged_20_to_24``, 30 aged 25-39 and
    20 aged 40-49."""
    counts = {"0-19": 40, "20-24": aged_20_to_24, "25-39": 30, "40-49": 20}
    start, groups = 0, {}
    for band, n in counts.items():
        groups[band] = range(start, start + n)
        start += n
    return rows(groups, "age")


def banded(data: pd.DataFrame, bands: dict[str, list[str]]) -> pd.DataFrame:
    """``data`` with ``band`` the coarser band of each age group (people outside every
    band left out, as a table of a narrower cohort would)."""
    lookup = {age: band for band, members in bands.items() for age in members}
    out = data.assign(band=data["age"].map(lookup))
    return out.dropna(subset=["band"])


OLD = {"0-19": ["0-19"], "20-39": ["20-24", "25-39"]}
NEW = {"0-24": ["0-19", "20-24"], "25-49": ["25-39", "40-49"]}


@pytest.mark.parametrize(("aged_20_to_24", "fails"), [(5, True), (9, True), (10, False)])
def test_new_bands_overlapping_earlier_bands_fail_when_the_sliver_is_small(aged_20_to_24, fails):
    people = ages(aged_20_to_24)
    earlier = released(banded(people, OLD), ["band"])

    findings = check(banded(people, NEW), ["band"], earlier)

    # 0-24 now minus 0-19 then: the people aged 20-24; reported once, not also as the
    # overlap of 0-24 with 20-39 (the same group).
    assert [(f.evidence["derivation"], f.evidence["derived_persons"], f.cell)
            for f in findings] == (
        [("nested", aged_20_to_24, {"band": "0-24"})] if fails else []
    )  # fmt: skip
    if fails:
        assert findings[0].evidence["earlier_cells"] == [{"band": "0-19"}]


def test_a_band_holding_several_earlier_bands_fails_on_what_is_left():
    people = ages(6)
    young = people[people["age"] == "0-19"]
    earlier = released(young.assign(band=["0-9"] * 20 + ["10-19"] * 20), ["band"])

    [finding] = check(banded(people, NEW), ["band"], earlier)

    # 0-24 (46 people) holds 0-9 (20) and 10-19 (20) whole: 6 are left, aged 20-24.
    assert finding.evidence["derivation"] == "union"
    assert finding.evidence["derived_persons"] == 6
    assert finding.evidence["earlier_cells"] == [{"band": "0-9"}, {"band": "10-19"}]
    assert finding.cell == {"band": "0-24"}
    assert finding.message == (
        "this table's band = 0-24 (46 people) minus the 2 cells of earlier.csv in release 1 "
        "inside it (band = 0-9; band = 10-19) leaves a group of 6; a group of fewer than 10 "
        "people must not be derivable"
    )


def test_a_group_found_only_after_a_first_subtraction_fails_too():
    # Earlier 0-19 / 20-39; now 0-24 / 25-49 with 50 people aged 20-24 (safe) but only
    # 4 aged 25-39 -> 25-39 = old 20-39 - (new 0-24 - old 0-19).
    people = rows({"0-19": range(0, 40), "20-24": range(40, 90), "25-39": range(90, 94),
                   "40-49": range(94, 114)}, "age")  # fmt: skip
    earlier = released(banded(people, OLD), ["band"])

    [finding] = check(banded(people, NEW), ["band"], earlier)

    assert finding.evidence["derivation"] == "overlap"
    assert finding.evidence["derived_persons"] == 4
    assert finding.cell == {"band": "25-49"}
    assert finding.evidence["earlier_cells"] == [{"band": "20-39"}]
    assert finding.message.startswith(
        "the 4 people in both this table's band = 25-49 and band = 20-39 in earlier.csv in "
        "release 1 can be counted by adding and subtracting the two tables' cells"
    )


# --- What passes ----------------------------------------------------------------------
def test_a_table_of_other_people_passes():
    earlier = released(rows({"A": range(0, 12), "B": range(12, 25)}), ["band"])

    assert check(rows({"A": range(100, 103), "B": range(103, 140)}), ["band"], earlier) == []


def test_the_same_table_released_again_passes():
    data = rows({"A": range(0, 12), "B": range(12, 25)})

    assert check(data, ["band"], released(data, ["band"])) == []


def test_crossing_an_earlier_table_with_everyone_in_both_passes():
    cohort = rows({"F": range(0, 60), "M": range(60, 120)}, "sex")
    cohort["region"] = np.where(np.arange(120) % 4 == 0, "North", "South")

    assert check(cohort, ["sex"], released(cohort, ["region"])) == []


# --- Cells a person can be in more than once --------------------------------------------
def test_tables_where_people_have_several_codes_are_checked_pairwise_and_as_wholes():
    # People by diagnosis code, a person having one or both codes.
    data = pd.concat([rows({"E11": range(0, 30)}, "code"), rows({"I10": range(20, 50)}, "code")])
    earlier = released(data[~data["person_id"].isin(pseudonyms(0, 2))], ["code"])

    findings = check(data, ["code"], earlier)

    # E11: 30 people then 28; I10 unchanged; 50 people in all, then 48.
    assert sorted((f.evidence["derivation"], f.evidence["derived_persons"], f.row)
                  for f in findings) == [("nested", 2, 0), ("population", 2, None)]  # fmt: skip
    whole = next(f for f in findings if f.evidence["derivation"] == "population")
    assert (whole.evidence["persons"], whole.evidence["earlier_persons"]) == (50, 48)


# --- Every reported group is real, and every nested pair is reported ------------------
CELLS = ("c0", "c1", "c2", "c3")
membership = st.lists(st.sets(st.sampled_from(CELLS), max_size=2), min_size=1, max_size=40)


def memberships(draw_one: bool, cells: list[set[str]]) -> list[set[str]]:
    return [set(sorted(c)[:1]) for c in cells] if draw_one else cells


def event_rows(cells: list[set[str]]) -> pd.DataFrame:
    """A row per person per cell they are in (person k is ``pseudonyms(k, 1)``)."""
    people = pseudonyms(0, len(cells))
    return pd.DataFrame([(people[k], c) for k, cs in enumerate(cells) for c in sorted(cs)],
                        columns=["person_id", "cell"])  # fmt: skip


def people_in(data: pd.DataFrame, cells: list[dict[str, str]]) -> set[str]:
    names = {c["cell"] for c in cells}
    return set(data.loc[data["cell"].isin(names), "person_id"])


def group_of(finding, new: pd.DataFrame, old: pd.DataFrame) -> set[str]:
    """The people a finding says can be derived, worked out from its named cells."""
    here = people_in(new, finding.evidence["cells"])
    there = people_in(old, finding.evidence["earlier_cells"])
    if finding.evidence["derivation"] == "overlap":
        return here & there
    inner, outer = (here, there) if here <= there else (there, here)
    assert inner <= outer, "a reported difference must be of nested groups"
    return outer - inner


@settings(max_examples=150, deadline=None)
@given(new=membership, old=membership, one_cell_each=st.booleans())
def test_reported_groups_are_real_and_nested_pairs_are_all_reported(new, old, one_cell_each):
    new_rows = event_rows(memberships(one_cell_each, new))
    old_rows = event_rows(memberships(one_cell_each, old))
    if new_rows.empty or old_rows.empty:
        return
    policy = Policy(threshold=5)

    findings = check(new_rows, ["cell"], released(old_rows, ["cell"]), policy=policy)

    groups = [frozenset(group_of(f, new_rows, old_rows)) for f in findings]
    assert all(0 < len(g) == f.evidence["derived_persons"] < 5
               for g, f in zip(groups, findings, strict=True))  # fmt: skip
    cells_new = {c: people_in(new_rows, [{"cell": c}]) for c in CELLS}
    cells_old = {c: people_in(old_rows, [{"cell": c}]) for c in CELLS}
    nested = {
        frozenset(max(x, y, key=len) - min(x, y, key=len))
        for x in cells_new.values() for y in cells_old.values()
        if x and y and (x <= y or y <= x) and 0 < abs(len(x) - len(y)) < 5
    }  # fmt: skip
    assert nested <= set(groups)


# --- The evidence and the checked table -------------------------------------------------
def test_findings_name_cells_and_sizes_never_people():
    people = ages(5)
    earlier = released(banded(people, OLD), ["band"])
    findings = check(banded(people, NEW), ["band"], earlier)
    text = json.dumps([f.as_json() for f in findings])

    hashes = person_hashes(people["person_id"])
    assert findings
    assert not any(p in text or p[:16] in text for p in people["person_id"])
    assert not any(str(h) in text for h in hashes)


def test_without_person_sets_for_the_table_differencing_is_for_the_checkers():
    table, _ = checked(rows({"A": range(0, 12)}), ["band"])

    [finding] = differencing(table, Ledger(candidate=None, released=()), DEFAULT)

    assert finding.status is Status.REVIEW
    assert finding.message == (
        "no person sets recorded for this table; differencing cannot be checked"
    )


def test_person_sets_that_do_not_match_the_tables_evidence_fail():
    data = rows({"A": range(0, 12), "B": range(12, 25)})
    table, _ = checked(data, ["band"])
    other = LedgerTable.from_rows(data.iloc[1:], ["band"], file="new.csv")

    [finding] = differencing(table, Ledger(candidate=other, released=()), DEFAULT)

    assert finding.status is Status.FAIL
    assert "cell sizes differ" in finding.message


def test_releases_under_other_pseudonyms_are_not_compared_but_flagged():
    cohort = rows({"0-19": range(0, 40), "20-39": range(40, 80)})
    earlier = released(cohort.iloc[3:], ["band"], id_space="project P2")

    [finding] = check(cohort, ["band"], earlier)

    assert finding.status is Status.REVIEW
    assert finding.evidence == {"tables_not_compared": 1}


def test_the_projects_own_releases_are_reported_before_the_datasets():
    cohort = rows({"0-19": range(0, 40), "20-39": range(40, 80)})
    theirs = released(cohort.iloc[2:], ["band"], project="P2", release="release 7")
    ours = released(cohort.iloc[4:], ["band"], release="release 3")

    findings = check(cohort, ["band"], theirs, ours)

    assert [(f.evidence["earlier_release"], f.evidence["same_project"]) for f in findings] == [
        ("release 3", True), ("release 7", False),
    ]  # fmt: skip
    assert "another project's release of this data" in findings[1].message


# --- The ledger -------------------------------------------------------------------------
def test_a_ledger_table_counts_each_person_once_per_cell_like_the_published_table():
    data = pd.concat([rows({"A": range(0, 12), "B": range(12, 25)})] * 3)  # 3 rows each
    table = LedgerTable.from_rows(data, ["band"])

    assert table.cells == (("A",), ("B",))
    assert table.sizes.tolist() == [12, 13]
    assert table.disjoint and table.population == 25
    members = table.members(0)
    assert np.all(members[1:] > members[:-1])
    assert set(members.tolist()) == set(person_hashes(pseudonyms(0, 12)).tolist())


def test_a_ledger_table_survives_a_parquet_round_trip(tmp_path):
    data = pd.concat([rows({"E11": range(0, 30)}, "code"), rows({"I10": range(20, 50)}, "code")])
    table = LedgerTable.from_rows(data, ["code"], release="release 2", file="codes.csv",
                                  extract="x9", cohort_hash="abc", project="P1",
                                  id_space="project P1")  # fmt: skip

    table.to_parquet(tmp_path / "codes.parquet")
    back = LedgerTable.read_parquet(tmp_path / "codes.parquet")

    assert (back.release, back.file, back.extract, back.cohort_hash, back.project,
            back.id_space, back.dimensions, back.statistic, back.cells) == (
        "release 2", "codes.csv", "x9", "abc", "P1", "project P1", ("code",), "people",
        (("E11",), ("I10",)),
    )  # fmt: skip
    assert np.array_equal(back.person, table.person)
    assert np.array_equal(back.cell, table.cell)
    assert not back.disjoint


def test_a_parquet_file_that_is_not_a_ledger_table_is_refused(tmp_path):
    pd.DataFrame({"cell": [0], "person": [1]}).to_parquet(tmp_path / "x.parquet")

    with pytest.raises(ValueError, match="not a ledger table"):
        LedgerTable.read_parquet(tmp_path / "x.parquet")


def test_person_hashes_are_the_first_eight_bytes_of_a_personalised_blake2b():
    digest = hashlib.blake2b(b"abc", digest_size=8, person=b"sde-x2-ledger").digest()

    assert person_hashes(["abc"]).tolist() == [int.from_bytes(digest, "little", signed=True)]


def test_person_hashes_do_not_depend_on_order_repeats_or_the_id_type():
    once = person_hashes(["b", "a"]).tolist()

    assert person_hashes(pd.Series(["a", "b", "a"])).tolist() == [once[1], once[0], once[1]]
    assert person_hashes([17]).tolist() == person_hashes(["17"]).tolist()


def test_entries_out_of_order_are_refused():
    with pytest.raises(ValueError, match="sorted"):
        LedgerTable(release="", file="", extract="", cohort_hash="", dimensions=("d",),
                    statistic="people", cells=(("a",),), person=np.array([5, 2]),
                    cell=np.array([0, 0]))  # fmt: skip
