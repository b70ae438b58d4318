"""Resource- and property-level differences between two states."""

from __future__ import annotations

from ccstate.service.state.diff import diff_properties, diff_resources
from ccstate.service.state.model import ResourceState


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
