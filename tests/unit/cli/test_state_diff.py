"""Resource- and property-level differences between two states."""

from __future__ import annotations

import copy
from typing import Any

import jsonpointer
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.state.diff import diff_properties, diff_resources
from ccstate.service.state.model import ResourceState
from hypothesis import given, settings
from hypothesis import strategies as st


def res(identifier: str, **props) -> ResourceState:
    return ResourceState(
        resource_type="AWS::S3::Bucket", identifier=identifier, current_properties=props
    )


def test_added_removed_and_changed_resources_sorted_by_identifier() -> None:
    before = {"b": res("b", A=1), "c": res("c", A=1)}
    after = {"a": res("a", A=1), "b": res("b", A=2), "c": res("c", A=1)}
    diffs = diff_resources(before, after)
    assert [(d.identifier, d.change) for d in diffs] == [("a", "added"), ("b", "changed")]
    diffs = diff_resources(after, before)
    assert [(d.identifier, d.change) for d in diffs] == [("a", "removed"), ("b", "changed")]


def test_property_paths_are_json_pointers() -> None:
    before = {"Tags": [{"Key": "a", "Value": "1"}], "x/y": 1, "Gone": True}
    after = {"Tags": [{"Key": "a", "Value": "2"}, {"Key": "b"}], "x/y": 2}
    changes = [(c.path, c.change) for c in diff_properties(before, after)]
    assert changes == [
        ("/Tags/0/Value", "changed"),
        ("/Tags/1", "added"),
        ("/x~1y", "changed"),
        ("/Gone", "removed"),
    ]


def test_equal_states_have_no_differences_but_type_changes_count() -> None:
    assert diff_resources({"a": res("a", A=1)}, {"a": res("a", A=1)}) == []
    assert [c.path for c in diff_properties({"A": 1}, {"A": "1"})] == ["/A"]
    assert [c.path for c in diff_properties({"A": 1}, {"A": True})] == ["/A"]


# ---------------------------------------------------------------- lists that are sets


def changes(before: Any, after: Any, schema: ResourceSchema | None = None) -> list[tuple]:
    return [(c.path, c.change, c.before, c.after) for c in diff_properties(before, after, schema)]


def test_a_tag_added_in_front_is_one_added_tag_not_every_position_shifted() -> None:
    before = {"Tags": [{"Key": "MANAGED_BY", "Value": "ccstate"}]}
    after = {
        "Tags": [{"Key": "Environment", "Value": "prod"}, {"Key": "MANAGED_BY", "Value": "ccstate"}]
    }
    assert changes(before, after) == [
        ("/Tags/0", "added", None, {"Key": "Environment", "Value": "prod"})
    ]
    assert changes(after, before) == [
        ("/Tags/0", "removed", {"Key": "Environment", "Value": "prod"}, None)
    ]


def test_a_changed_tag_value_points_at_that_tag_wherever_it_moved() -> None:
    before = {"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "1"}]}
    after = {"Tags": [{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]}
    assert changes(before, after) == [("/Tags/0/Value", "changed", "1", "2")]


def test_the_schema_names_the_tag_property_and_the_arrays_that_are_sets() -> None:
    schema = ResourceSchema(
        type_name="AWS::X::Y",
        unordered_arrays=frozenset({"/Rules/*/Ports"}),
        tagging={"taggable": True, "tagProperty": "/properties/Labels"},
    )
    before = {"Labels": [{"Key": "a", "Value": "1"}], "Rules": [{"Ports": [80, 443]}]}
    after = {"Labels": [{"Key": "b"}, {"Key": "a", "Value": "1"}], "Rules": [{"Ports": [443, 80]}]}
    assert changes(before, after, schema) == [("/Labels/0", "added", None, {"Key": "b"})]
    # Without the schema, Ports is an ordered list and Labels is not taken for tags.
    assert [path for path, *_ in changes(before, after)] != ["/Labels/0"]


def test_a_set_that_lost_a_duplicate_reports_the_one_removed() -> None:
    schema = ResourceSchema(type_name="AWS::X::Y", unordered_arrays=frozenset({"/Ports"}))
    assert changes({"Ports": [80, 80, 443]}, {"Ports": [443, 80]}, schema) == [
        ("/Ports/1", "removed", 80, None)
    ]


def test_an_item_inserted_into_an_ordered_list_is_one_addition() -> None:
    assert changes({"L": ["b", "c"]}, {"L": ["a", "b", "c"]}) == [("/L/0", "added", None, "a")]


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "a", "~/"])
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["A", "b", "x/y", "~0"]), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(["A", "B", "x/y", "Tags"]), json_values, max_size=4)
objects = st.recursive(
    json_scalars,
    lambda inner: st.dictionaries(st.sampled_from(["A", "b", "x/y", "~1"]), inner, max_size=4),
    max_leaves=12,
)
tag_lists = st.lists(
    st.fixed_dictionaries({"Key": st.sampled_from("abcdef"), "Value": st.sampled_from("123")}),
    max_size=6,
    unique_by=lambda t: t["Key"],
)


@settings(max_examples=100, deadline=None)
@given(documents, documents)
def test_equal_documents_have_no_changes_and_unequal_ones_have_some(a: Any, b: Any) -> None:
    assert changes(a, a) == []
    if a != b or repr(a) != repr(b):
        assert (changes(a, b) == []) == _json_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(objects.filter(lambda o: isinstance(o, dict)), objects.filter(lambda o: isinstance(o, dict)))
def test_the_diff_backwards_is_the_diff_forwards_inverted(a: Any, b: Any) -> None:
    """Without arrays the edit is unique, so backwards is forwards inverted, change for change."""
    inverted = sorted(repr(_invert(c)) for c in changes(a, b))
    assert sorted(repr(c) for c in changes(b, a)) == inverted


@settings(max_examples=100, deadline=None)
@given(documents, documents)
def test_the_diff_backwards_touches_what_the_diff_forwards_touches(a: Any, b: Any) -> None:
    # An edit of an array is not unique (see the next test), so only the properties each
    # direction touches are compared.
    def touched(found: list[tuple]) -> set[str]:
        return {path.split("/")[1] for path, *_ in found}

    assert touched(changes(b, a)) == touched(changes(a, b))


def test_an_array_edit_may_differ_backwards_and_both_are_right() -> None:
    """Found by hypothesis: DeepDiff's array edit is not always the shortest nor symmetric."""
    a, b = {"A": [None, True]}, {"A": [True, None, None]}
    assert changes(a, b) == [("/A/0", "added", None, True), ("/A/2", "changed", True, None)]
    assert changes(b, a) == [
        ("/A/0", "changed", True, None),
        ("/A/1", "changed", None, True),
        ("/A/2", "removed", None, None),
    ]


def test_a_list_edit_backwards_is_an_edit_of_the_same_size() -> None:
    a, b = {"A": [None, False, None]}, {"A": [False, None, False]}
    assert changes(a, b) == [("/A/0", "added", None, False), ("/A/2", "removed", None, None)]
    assert changes(b, a) == [("/A/0", "added", None, None), ("/A/2", "removed", False, None)]


@settings(max_examples=100, deadline=None)
@given(objects.filter(lambda o: isinstance(o, dict)), objects.filter(lambda o: isinstance(o, dict)))
def test_applying_the_diff_to_before_gives_after(a: dict, b: dict) -> None:
    assert _apply(a, diff_properties(a, b)) == b


@settings(max_examples=100, deadline=None)
@given(tag_lists, st.randoms(use_true_random=False))
def test_the_order_of_tags_never_matters(tags: list, rnd: Any) -> None:
    shuffled = list(tags)
    rnd.shuffle(shuffled)
    assert changes({"Tags": tags}, {"Tags": shuffled}) == []


@settings(max_examples=100, deadline=None)
@given(tag_lists, st.integers(0, 6), st.randoms(use_true_random=False))
def test_adding_one_tag_anywhere_is_one_added_change(tags: list, where: int, rnd: Any) -> None:
    new = {"Key": "new", "Value": "1"}
    shuffled = list(tags)
    rnd.shuffle(shuffled)
    shuffled.insert(min(where, len(shuffled)), new)
    assert changes({"Tags": tags}, {"Tags": shuffled}) == [
        (f"/Tags/{shuffled.index(new)}", "added", None, new)
    ]


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _invert(change: tuple) -> tuple:
    path, kind, before, after = change
    return (path, {"added": "removed", "removed": "added"}.get(kind, kind), after, before)


def _apply(document: dict, found: list) -> dict:
    out = copy.deepcopy(document)
    for change in found:
        pointer = jsonpointer.JsonPointer(change.path)
        if pointer.path == "":
            return change.after
        parent = pointer.parts[:-1]
        container = jsonpointer.JsonPointer.from_parts(parent).resolve(out)
        if change.change == "removed":
            del container[pointer.parts[-1]]
        else:
            container[pointer.parts[-1]] = change.after
    return out
