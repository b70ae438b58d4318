"""Properties of compare() and the remediation patch over random nested JSON."""

from __future__ import annotations

import copy
import os
import random
from typing import Any

import jsonpatch
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import compare
from ccstate.service.drift.plan import remediation_patch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCHEMA = ResourceSchema(
    type_name="Test::Any::Thing",
    unordered_arrays=frozenset({"/Set", "/Obj/Set"}),
    properties={"Tags": {"type": "array"}},
)
# Report every added property, so that nothing is forgiven as a server default.
REPORT_ALL = [{"path": "/**", "severity": "medium", "report_added": True}]
PROFILE = settings(
    max_examples=int(os.environ.get("DRIFT_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

keys = st.sampled_from(["a", "b", "c/d", "e~f", "Set", "0", "Obj"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text("abxy01{", max_size=3),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
tag_lists = st.lists(
    st.fixed_dictionaries(
        {
            "Key": st.sampled_from(["env", "team", "aws:cloudformation:stack-name", "x"]),
            "Value": st.sampled_from(["a", "b", ""]),
        }
    ),
    max_size=4,
    unique_by=lambda t: t["Key"],
)


@st.composite
def models(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(st.dictionaries(keys, json_values, max_size=5))
    if draw(st.booleans()):
        model["Tags"] = draw(tag_lists)
    if draw(st.booleans()):
        model["Set"] = draw(st.lists(json_values, max_size=5))
    if draw(st.booleans()):
        model["Obj"] = {"Set": draw(st.lists(st.integers(0, 3), max_size=5)), "k": draw(scalars)}
    return model


def restored(expected: dict[str, Any], actual: dict[str, Any], **kw: Any) -> dict[str, Any]:
    diffs = compare(expected, actual, SCHEMA, **kw)
    patch = remediation_patch(diffs, expected, SCHEMA)
    return jsonpatch.apply_patch(copy.deepcopy(actual), patch)


def shuffled(model: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    out = copy.deepcopy(model)
    obj = out.get("Obj")
    nested = obj.get("Set") if isinstance(obj, dict) else None
    for arr in (out.get("Set"), out.get("Tags"), nested):
        if isinstance(arr, list):
            rng.shuffle(arr)
    return out


@PROFILE
@given(models())
def test_a_model_never_drifts_from_itself(model: dict[str, Any]) -> None:
    assert compare(model, copy.deepcopy(model), SCHEMA) == []
    assert compare(model, copy.deepcopy(model), SCHEMA, severity_rules=REPORT_ALL) == []


@PROFILE
@given(models(), models())
def test_the_patch_restores_the_expected_state(
    expected: dict[str, Any], actual: dict[str, Any]
) -> None:
    assert compare(expected, restored(expected, actual), SCHEMA) == []


@PROFILE
@given(models(), models())
def test_the_patch_restores_even_reported_additions(
    expected: dict[str, Any], actual: dict[str, Any]
) -> None:
    after = restored(expected, actual, severity_rules=REPORT_ALL)
    assert compare(expected, after, SCHEMA, severity_rules=REPORT_ALL) == []


@PROFILE
@given(models(), models(), st.integers(0, 2**16))
def test_order_of_unordered_arrays_and_tags_does_not_matter(
    expected: dict[str, Any], actual: dict[str, Any], seed: int
) -> None:
    assert compare(expected, shuffled(expected, seed), SCHEMA) == []
    before = compare(expected, actual, SCHEMA)
    after = compare(expected, shuffled(actual, seed), SCHEMA)
    assert len(before) == len(after)
    assert {(d.difference_type, d.restore_path) for d in before} == {
        (d.difference_type, d.restore_path) for d in after
    }


# Values without vacuous or ambiguously spelled leaves: here the patch must restore exactly.
plain_values = st.recursive(
    st.one_of(st.integers(-3, 3), st.text("abxyz", min_size=1, max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(keys, inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


@PROFILE
@given(
    st.dictionaries(keys.filter(lambda k: k not in ("Set", "Obj")), plain_values, max_size=5),
    st.dictionaries(keys.filter(lambda k: k not in ("Set", "Obj")), plain_values, max_size=5),
)
def test_the_patch_restores_exactly_when_nothing_is_forgiven(
    expected: dict[str, Any], actual: dict[str, Any]
) -> None:
    assert restored(expected, actual, severity_rules=REPORT_ALL) == expected
