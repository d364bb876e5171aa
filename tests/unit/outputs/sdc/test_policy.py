"""Disclosure policy: the presets carry the reference values, and a project's rules JSON
is a preset plus overrides where anything unknown or out of range is refused by name."""

import json

import pytest

from outputs.sdc.policy import PRESETS, Policy, policy_from_json


def test_the_presets_are_the_four_the_reference_names():
    assert set(PRESETS) == {"acro-default", "opensafely-7-5", "ons-10-5", "datashield-3"}


def test_each_preset_is_filed_under_its_own_name():
    assert all(policy.name == name for name, policy in PRESETS.items())


# reference/disclosure-control.md, principle 3 and the rule catalogue.
@pytest.mark.parametrize(
    ("preset", "setting", "value"),
    [
        ("acro-default", "threshold", 10), ("acro-default", "dof", 10),
        ("acro-default", "nk_n", 2), ("acro-default", "nk_k", 0.90),
        ("acro-default", "p_ratio", 0.10), ("acro-default", "zeros_disclosive", True),
        ("acro-default", "rounding_base", 5), ("acro-default", "saturation", 0.33),
        ("acro-default", "safe_extreme", 10), ("acro-default", "max_csv_rows", 5000),
        ("acro-default", "mitigate", "suppress"), ("acro-default", "redaction_level", 9),
        ("opensafely-7-5", "redaction", 7), ("opensafely-7-5", "redaction_level", 7),
        ("opensafely-7-5", "rounding_base", 5), ("opensafely-7-5", "mitigate", "round"),
        ("ons-10-5", "threshold", 10), ("ons-10-5", "rounding_base", 5),
        ("ons-10-5", "mitigate", "round"),
        ("datashield-3", "threshold", 3), ("datashield-3", "saturation", 0.33),
    ],
)  # fmt: skip
def test_preset_has_the_reference_value(preset, setting, value):
    assert getattr(PRESETS[preset], setting) == value


def test_opensafely_publishes_nothing_it_would_redact():
    """Redact at or below 7: a count of 8 is the smallest shown, so the threshold is 8."""
    policy = PRESETS["opensafely-7-5"]

    assert policy.threshold == policy.redaction_level + 1 == 8


@pytest.mark.parametrize("rules", [None, {}, "{}", '{"preset": "acro-default"}'])
def test_no_rules_is_the_acro_default_preset(rules):
    assert policy_from_json(rules) is PRESETS["acro-default"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_alone_keeps_its_name_and_version(preset):
    policy = policy_from_json({"preset": preset})

    assert policy == PRESETS[preset]
    assert policy.name == preset


def test_overrides_apply_on_top_of_the_preset_under_a_custom_name():
    policy = policy_from_json({"preset": "ons-10-5", "threshold": 12, "p_ratio": 0.2})

    assert (policy.threshold, policy.p_ratio) == (12, 0.2)
    assert (policy.rounding_base, policy.mitigate) == (5, "round")  # kept from the preset
    assert policy.name == "ons-10-5+custom"
    assert policy.version == PRESETS["ons-10-5"].version


def test_overrides_without_a_preset_start_from_acro_default():
    policy = policy_from_json(json.dumps({"dof": 20}))

    assert policy.dof == 20
    assert policy.threshold == 10
    assert policy.name == "acro-default+custom"


def test_reading_rules_leaves_the_callers_dict_alone():
    rules = {"preset": "datashield-3", "threshold": 5}

    policy_from_json(rules)

    assert rules == {"preset": "datashield-3", "threshold": 5}


def test_an_unknown_preset_is_refused_by_name():
    with pytest.raises(ValueError, match="acro-lenient"):
        policy_from_json({"preset": "acro-lenient"})


@pytest.mark.parametrize("key", ["thresold", "name", "version"])
def test_an_unknown_setting_is_refused_by_name(key):
    """``name`` and ``version`` are the environment's, never a project's to override."""
    with pytest.raises(ValueError, match=key):
        policy_from_json({key: 12})


@pytest.mark.parametrize("rules", ["[1, 2]", '"acro-default"', "not json"])
def test_rules_that_are_not_a_json_object_are_refused(rules):
    with pytest.raises(ValueError):
        policy_from_json(rules)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("threshold", 0), ("dof", -1), ("nk_n", 0), ("rounding_base", 0),
        ("nk_k", 0), ("nk_k", 1.5), ("p_ratio", 1.0), ("p_ratio", -0.1),
        ("saturation", 0), ("saturation", 1.2), ("mitigate", "delete"),
        ("safe_extreme", 0), ("max_csv_rows", 0), ("redaction", -1),
        # Wrong types must not slip through as truthy strings or fractional people.
        ("threshold", "10"), ("threshold", 9.5), ("zeros_disclosive", "no"),
    ],
)  # fmt: skip
def test_an_invalid_value_is_refused_naming_the_setting(setting, value):
    with pytest.raises(ValueError, match=setting):
        policy_from_json({setting: value})


def test_an_invalid_value_in_a_policy_built_directly_is_refused():
    with pytest.raises(ValueError, match="dof"):
        Policy(dof=-1)
