"""Compare the properties ccstate recorded with what the cloud reports now. Pure: no I/O.

The result is CloudFormation's drift shape (PropertyPath, ExpectedValue, ActualValue,
DifferenceType) plus a severity. The schema decides what is compared: read-only and write-only
properties are skipped, ``insertionOrder: false`` arrays compare as multisets, tags compare as a
key/value map without the ``aws:*`` tags AWS adds. What counts as a server default rather than
drift is explained in docs/drift.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ccstate.service.changes.redaction import MARKER as REDACTED_KEY
from ccstate.service.changes.redaction import is_redacted
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.rules import (
    DEFAULT_RULES,
    IGNORE,
    SeverityRules,
    Verdict,
    join_pointer,
    known_defaults,
    split_pointer,
)

SYSTEM_TAG_PREFIX = "aws:"
DifferenceType = Literal["ADD", "REMOVE", "NOT_EQUAL"]
Path = tuple[str, ...]
# (stored fingerprint such as "hmac-sha256:...", the actual value) -> do they match?
FingerprintMatcher = Callable[[str, Any], bool]
# What a difference shows instead of a secret the cloud returned.
HIDDEN_ACTUAL = {REDACTED_KEY: "differs from the stored fingerprint"}


@dataclass(frozen=True)
class PropertyDifference:
    path: str
    expected: Any
    actual: Any
    difference_type: DifferenceType
    severity: str
    # Set when a fix must restore an enclosing value whole (an unordered array, the tags).
    restore_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "PropertyPath": self.path,
            "ExpectedValue": self.expected,
            "ActualValue": self.actual,
            "DifferenceType": self.difference_type,
            "Severity": self.severity,
        }
        if self.restore_path is not None:
            out["RestorePath"] = self.restore_path
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PropertyDifference:
        return cls(
            path=raw["PropertyPath"],
            expected=raw.get("ExpectedValue"),
            actual=raw.get("ActualValue"),
            difference_type=raw["DifferenceType"],
            severity=raw["Severity"],
            restore_path=raw.get("RestorePath"),
        )


def compare(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    schema: ResourceSchema,
    *,
    severity_rules: SeverityRules | Iterable[Mapping[str, Any]] = DEFAULT_RULES,
    fingerprint_matcher: FingerprintMatcher | None = None,
) -> list[PropertyDifference]:
    """The differences between stored ``expected`` and cloud ``actual`` properties.

    ``severity_rules`` is a rule table, or a list of rule dicts tried before the defaults.
    Redacted stored values (``{"ccstate:redacted": "hmac-sha256:..."}``) are skipped unless
    ``fingerprint_matcher`` can tell whether the actual value still matches the fingerprint.
    """
    return Comparer(schema, severity_rules, fingerprint_matcher).compare(expected, actual)


def contains_redacted(value: Any) -> bool:
    if is_redacted(value):
        return True
    if isinstance(value, dict):
        return any(contains_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_redacted(v) for v in value)
    return False


def is_vacuous(value: Any) -> bool:
    """Null, false, empty, or an object of only such values: the same as not being set."""
    if value is None or value is False or (isinstance(value, str) and value == ""):
        return True
    if isinstance(value, list):
        return not value
    if isinstance(value, dict):
        return not is_redacted(value) and all(is_vacuous(v) for v in value.values())
    return False


def scalars_equal(expected: Any, actual: Any) -> bool:
    """Equality that forgives the string/number/boolean spellings APIs mix ("30" == 30)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _text(expected) == _text(actual)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    if isinstance(expected, str) and isinstance(actual, (int, float)):
        return _number_equals(expected, actual)
    if isinstance(actual, str) and isinstance(expected, (int, float)):
        return _number_equals(actual, expected)
    return type(expected) is type(actual) and expected == actual


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.lower() if isinstance(value, str) else repr(value)


def _number_equals(text: str, number: float) -> bool:
    try:
        return float(text) == float(number)
    except ValueError:
        return False


def _parse_json_text(value: Any) -> Any:
    """A JSON object or array written as a string (policy documents often are), parsed."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def schema_path_matches(pattern: Sequence[str], path: Sequence[str], *, prefix: bool) -> bool:
    """Schema paths use ``*`` for any array index; ``prefix`` also matches descendants."""
    if len(pattern) > len(path) or (not prefix and len(pattern) != len(path)):
        return False
    return all(p in ("*", s) for p, s in zip(pattern, path, strict=False))


@dataclass(frozen=True)
class TagEntry:
    segment: str  # where the tag sits: its index in a list, or its key in a map
    value: Any
    as_item: Any  # the tag as the property spells it: {"Key": k, "Value": v}, or v in a map


def tag_entries(value: Any) -> dict[str, TagEntry] | None:
    """Key -> entry without ``aws:*`` tags; None when ``value`` is not a tag list or map."""
    if isinstance(value, dict):
        if is_redacted(value):
            return None
        return {
            str(k): TagEntry(str(k), v, v)
            for k, v in value.items()
            if not str(k).startswith(SYSTEM_TAG_PREFIX)
        }
    if isinstance(value, list) and all(isinstance(t, dict) and "Key" in t for t in value):
        return {
            str(t["Key"]): TagEntry(str(i), t.get("Value"), t)
            for i, t in enumerate(value)
            if not str(t["Key"]).startswith(SYSTEM_TAG_PREFIX)
        }
    return None


def without_system_tags(value: Any) -> Any:
    """Tags as the user can write them back: ``aws:*`` tags are AWS's and cannot be set."""
    if isinstance(value, dict) and not is_redacted(value):
        return {k: v for k, v in value.items() if not str(k).startswith(SYSTEM_TAG_PREFIX)}
    if isinstance(value, list):
        return [
            t
            for t in value
            if not (isinstance(t, dict) and str(t.get("Key", "")).startswith(SYSTEM_TAG_PREFIX))
        ]
    return value


class Comparer:
    """``compare`` for one schema, prepared once: reuse it to compare many resources of a type."""

    def __init__(
        self,
        schema: ResourceSchema,
        rules: SeverityRules | Iterable[Mapping[str, Any]] = DEFAULT_RULES,
        matcher: FingerprintMatcher | None = None,
    ) -> None:
        if not isinstance(rules, SeverityRules):
            rules = DEFAULT_RULES.with_extra(rules)
        self.schema = schema
        self.type_name = schema.type_name
        self.rules = rules.for_type(schema.type_name)
        self.has_ignore_rules = any(r.severity == IGNORE for r in self.rules.rules)
        self.skipped: dict[str, list[Path]] = {}  # by first segment: most paths skip quickly
        for pointer in schema.read_only | schema.write_only:
            pattern = tuple(split_pointer(pointer))
            if pattern:
                self.skipped.setdefault(pattern[0], []).append(pattern)
        self.unordered = [tuple(split_pointer(p)) for p in schema.unordered_arrays]
        tags = schema.tags_property
        self.tags: Path | None = tuple(split_pointer(tags)) if tags else None
        self.matcher = matcher

    def compare(
        self, expected: Mapping[str, Any], actual: Mapping[str, Any]
    ) -> list[PropertyDifference]:
        return self.diff(dict(expected), dict(actual), ())

    # ----------------------------------------------------------------- dispatch

    def diff(self, expected: Any, actual: Any, path: Path) -> list[PropertyDifference]:
        if self.is_skipped(path):
            return []
        if is_redacted(expected):
            return self.redacted(expected, actual, path)
        if path == self.tags:
            found = self.tags_diff(expected, actual, path)
            if found is not None:
                return found
        if isinstance(expected, dict) and isinstance(actual, dict):
            return self.objects(expected, actual, path)
        if isinstance(expected, list) and isinstance(actual, list):
            if any(schema_path_matches(u, path, prefix=False) for u in self.unordered):
                return self.unordered_arrays(expected, actual, path)
            return self.ordered_arrays(expected, actual, path)
        parsed_expected, parsed_actual = _parse_json_text(expected), _parse_json_text(actual)
        if parsed_expected is not expected or parsed_actual is not actual:
            return self.json_text(expected, actual, parsed_expected, parsed_actual, path)
        if scalars_equal(expected, actual) or (is_vacuous(expected) and is_vacuous(actual)):
            return []
        return self.emit(path, expected, actual, "NOT_EQUAL")

    def is_skipped(self, path: Path) -> bool:
        candidates = self.skipped.get(path[0], ()) if path else ()
        if any(schema_path_matches(p, path, prefix=True) for p in candidates):
            return True
        return bool(path) and self.has_ignore_rules and self.judge(path).severity == IGNORE

    def judge(self, path: Path) -> Verdict:
        is_tag = self.tags is not None and path[: len(self.tags)] == self.tags
        return self.rules.judge(self.type_name, join_pointer(path), is_tag=is_tag)

    def emit(
        self,
        path: Path,
        expected: Any,
        actual: Any,
        kind: DifferenceType,
        *,
        restore: Path | None = None,
    ) -> list[PropertyDifference]:
        severity = self.judge(path).severity
        if severity == IGNORE:
            return []
        return [
            PropertyDifference(
                path=join_pointer(path),
                expected=expected,
                actual=actual,
                difference_type=kind,
                severity=severity,
                restore_path=None if restore is None else join_pointer(restore),
            )
        ]

    # ----------------------------------------------------------------- objects

    def objects(
        self, expected: dict[str, Any], actual: dict[str, Any], path: Path
    ) -> list[PropertyDifference]:
        out: list[PropertyDifference] = []
        for key in sorted(expected.keys() | actual.keys()):
            child = (*path, key)
            if key in expected and key in actual:
                out += self.diff(expected[key], actual[key], child)
            elif key in expected:
                out += self.removed(expected[key], child)
            else:
                out += self.added(actual[key], child)
        return out

    def removed(self, expected: Any, path: Path) -> list[PropertyDifference]:
        """The state has a value the cloud no longer reports."""
        if self.is_skipped(path) or (is_redacted(expected) and self.matcher is None):
            return []
        visible = self.visible(expected, path)
        if is_vacuous(without_system_tags(visible) if path == self.tags else visible):
            return []
        return self.emit(path, visible, None, "REMOVE")

    def added(self, actual: Any, path: Path) -> list[PropertyDifference]:
        """The cloud reports a value the state never had: a server default, unless it matters."""
        if self.is_skipped(path):
            return []
        visible = self.visible(actual, path)
        if path == self.tags:
            visible = without_system_tags(visible)
        if is_vacuous(visible) or not self.judge(path).reports_added:
            return []
        pointer = join_pointer(path)
        if any(not self.diff(d, visible, path) for d in known_defaults(self.type_name, pointer)):
            return []
        return self.emit(path, None, visible, "ADD")

    def visible(self, value: Any, path: Path) -> Any:
        """``value`` without the parts below ``path`` that are never compared."""
        if isinstance(value, dict) and not is_redacted(value):
            return {
                k: self.visible(v, (*path, k))
                for k, v in value.items()
                if not self.is_skipped((*path, k))
            }
        if isinstance(value, list):
            return [self.visible(v, (*path, str(i))) for i, v in enumerate(value)]
        return value

    # ----------------------------------------------------------------- arrays

    def ordered_arrays(
        self, expected: list[Any], actual: list[Any], path: Path
    ) -> list[PropertyDifference]:
        out: list[PropertyDifference] = []
        for i in range(min(len(expected), len(actual))):
            out += self.diff(expected[i], actual[i], (*path, str(i)))
        for i in range(len(actual), len(expected)):
            if not self.is_skipped((*path, str(i))):
                out += self.emit((*path, str(i)), expected[i], None, "REMOVE")
        for i in range(len(expected), len(actual)):
            if not self.is_skipped((*path, str(i))):
                out += self.emit((*path, str(i)), None, actual[i], "ADD")
        return out

    def unordered_arrays(
        self, expected: list[Any], actual: list[Any], path: Path
    ) -> list[PropertyDifference]:
        lost, extra = self.unmatched(expected, actual, path)
        out: list[PropertyDifference] = []
        for i in lost:
            out += self.emit((*path, str(i)), expected[i], None, "REMOVE", restore=path)
        for j in extra:
            out += self.emit((*path, str(j)), None, actual[j], "ADD", restore=path)
        return out

    def unmatched(
        self, expected: list[Any], actual: list[Any], path: Path
    ) -> tuple[list[int], list[int]]:
        """Indices left over by a maximum matching of equivalent elements (a multiset diff)."""
        free: dict[str, list[int]] = {}
        for j, item in enumerate(actual):
            free.setdefault(_canonical(item), []).append(j)
        lost: list[int] = []
        for i, item in enumerate(expected):
            same = free.get(_canonical(item))
            if same:
                same.pop(0)
            else:
                lost.append(i)
        extra = sorted(j for js in free.values() for j in js)
        if not lost or not extra:
            return lost, extra
        pairs = _maximum_matching(
            lost,
            extra,
            lambda i, j: not self.diff(expected[i], actual[j], (*path, str(j))),
        )
        return (
            [i for i in lost if i not in pairs],
            [j for j in extra if j not in set(pairs.values())],
        )

    # ----------------------------------------------------------------- special values

    def tags_diff(self, expected: Any, actual: Any, path: Path) -> list[PropertyDifference] | None:
        ours, theirs = tag_entries(expected), tag_entries(actual)
        if ours is None or theirs is None:
            return None
        out: list[PropertyDifference] = []
        for key in sorted(ours.keys() | theirs.keys()):
            mine, cloud = ours.get(key), theirs.get(key)
            if mine is not None and cloud is not None:
                where = (*path, cloud.segment, *(("Value",) if isinstance(actual, list) else ()))
                restore = join_pointer(path)
                out += [
                    replace(d, restore_path=restore)
                    for d in self.diff(mine.value, cloud.value, where)
                ]
            elif mine is not None:
                out += self.emit((*path, mine.segment), mine.as_item, None, "REMOVE", restore=path)
            elif cloud is not None:
                out += self.emit((*path, cloud.segment), None, cloud.as_item, "ADD", restore=path)
        return out

    def redacted(
        self, expected: dict[str, Any], actual: Any, path: Path
    ) -> list[PropertyDifference]:
        if self.matcher is None:
            return []
        if is_redacted(actual):
            same = actual[REDACTED_KEY] == expected[REDACTED_KEY]
        else:
            same = self.matcher(expected[REDACTED_KEY], actual)
        return [] if same else self.emit(path, expected, HIDDEN_ACTUAL, "NOT_EQUAL")

    def json_text(
        self, expected: Any, actual: Any, parsed_expected: Any, parsed_actual: Any, path: Path
    ) -> list[PropertyDifference]:
        """A document written as a JSON string on one side: compare meaning, report it whole."""
        if isinstance(parsed_expected, str) and isinstance(parsed_actual, str):
            same = parsed_expected == parsed_actual
        else:
            same = not self.diff(parsed_expected, parsed_actual, path)
        return [] if same else self.emit(path, expected, actual, "NOT_EQUAL")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _maximum_matching(
    left: list[int], right: list[int], fits: Callable[[int, int], bool]
) -> dict[int, int]:
    """Kuhn's augmenting paths: a maximum left->right matching, independent of input order."""
    edges = {i: [j for j in right if fits(i, j)] for i in left}
    owner: dict[int, int] = {}  # right -> left

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in left:
        augment(i, set())
    return {i: j for j, i in owner.items()}
