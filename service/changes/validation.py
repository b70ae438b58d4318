"""Checks on what a caller asks the cloud to do, made before anything is called or locked.

- resource type names, identifiers and free text are well-formed and bounded;
- properties are a JSON object no larger than Cloud Control accepts and valid against the
  resource provider schema (read-only properties may not be set);
- patch documents are RFC 6902, bounded, and touch neither read-only nor create-only properties.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from typing import TYPE_CHECKING, Any

import jsonpatch
import jsonpointer
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.secrets import looks_secret_key, scrub_text
from ccstate.service.errors import InvalidInput
from ccstate.service.names import validate_identifier
from ccstate.service.state.model import canonical_json

if TYPE_CHECKING:  # jsonschema and regex are imported with the first schema check (0.1 s)
    import regex
    from jsonschema.exceptions import ValidationError

TYPE_NAME = re.compile(r"^[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}$")
# Cloud Control's own limits on DesiredState and PatchDocument (characters of JSON).
MAX_DESIRED_STATE_CHARS = 16_384
MAX_PATCH_CHARS = 65_536
MAX_TEXT_CHARS = 8_192
MAX_SCHEMA_ERRORS = 5
log = logging.getLogger(__name__)
PATCH_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def validate_type_name(type_name: object) -> str:
    if not isinstance(type_name, str) or not TYPE_NAME.fullmatch(type_name):
        raise InvalidInput(
            f"{type_name!r} is not a resource type name.",
            next_step="Use the form Service::Product::Type, e.g. AWS::S3::Bucket.",
            field="resource_type",
        )
    return type_name


def validate_text(value: str | None, field: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    value = value or ""
    if len(value) > limit:
        raise InvalidInput(
            f"'{field}' is {len(value)} characters long; the limit is {limit}.",
            next_step=f"Shorten '{field}' to a summary of at most {limit} characters.",
            field=field,
        )
    return value


def validate_resource_identifier(identifier: object) -> str:
    return validate_identifier(identifier)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties


def validate_properties(
    schema: ResourceSchema, properties: object, *, against_schema: bool = True
) -> dict[str, Any]:
    """The desired state of a new resource: a bounded JSON object valid against the schema
    (``against_schema=False``: the caller checks what it makes of them instead)."""
    if not isinstance(properties, dict):
        raise InvalidInput(
            f"The properties of a {schema.type_name} must be a JSON object, "
            f"not {type(properties).__name__}.",
            next_step='Pass properties as an object, e.g. {"BucketName": "my-bucket"}.',
            field="properties",
        )
    size = len(canonical_json(properties))
    if size > MAX_DESIRED_STATE_CHARS:
        raise InvalidInput(
            f"The properties are {size} characters of JSON; Cloud Control accepts at most "
            f"{MAX_DESIRED_STATE_CHARS}.",
            next_step="Remove unneeded properties, or split the change into a create and updates.",
            field="properties",
        )
    read_only = sorted(p for p in _top_level(schema.read_only) if p in properties)
    if read_only:
        raise InvalidInput(
            f"{schema.type_name} property {', '.join(read_only)} is read-only: AWS sets it.",
            next_step=f"Remove {', '.join(read_only)} from the properties.",
            field="properties",
            properties=read_only,
        )
    if against_schema:
        check_against_schema(schema, properties)
    return properties


def check_against_schema(
    schema: ResourceSchema, properties: dict[str, Any], *, read_back: bool = False
) -> None:
    """Raise ``InvalidInput`` listing the first few schema violations of ``properties``.

    ``read_back``: the properties came from reading the resource (an update's patched model),
    which never holds write-only properties (Lambda's ``Code``): those are not required."""
    if not schema.raw:
        return
    validator = _validator_for(schema, read_back)
    problems = []
    for error in sorted(validator.iter_errors(properties), key=lambda e: list(e.path)):
        problems.append(_describe(error))
        if len(problems) >= MAX_SCHEMA_ERRORS:
            break
    if problems:
        raise InvalidInput(
            f"The properties do not match the {schema.type_name} schema: " + "; ".join(problems),
            next_step="Correct them; get_resource_schema_information shows every property "
            "and its type.",
            field="properties",
            problems=problems,
        )


def schema_errors(schema: ResourceSchema, properties: dict[str, Any]) -> list[ValidationError]:
    """Every violation of the resource provider schema by ``properties``, in path order."""
    if not schema.raw:
        return []
    errors = _validator_for(schema).iter_errors(properties)
    return sorted(errors, key=lambda e: [str(p) for p in e.path])


def _describe(error: ValidationError) -> str:
    """Where and what, with any secret the message quotes (a mistyped password) masked."""
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    message = scrub_text(error.message[:300], lambda _secret: "<secret>")
    if where != "/" and looks_secret_key(where.rsplit("/", 1)[-1]):
        message = "the value does not match the schema: " + error.validator
    return f"{where if where != '/' else '(top level)'}: {message}"


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> regex.Pattern[str] | None:
    """AWS schemas use ECMA regexes, some with Unicode classes (``\\p{L}``) that Python's ``re``
    lacks; the ``regex`` module reads those. A pattern neither can compile is not the caller's
    fault: it is skipped (and logged), the cloud still checks it."""
    import regex

    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, OverflowError):
        log.info("schema pattern %r cannot be compiled; not checked here", pattern)
        return None


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` matches part of ``text``; None when the pattern cannot be checked."""
    compiled = _compiled(pattern)
    return None if compiled is None else compiled.search(text) is not None


def _safe_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and _search(pattern, instance) is False:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _safe_pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _safe_additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    extras = [key for key in instance if not _declared(key, schema)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        from jsonschema.exceptions import ValidationError

        listed = ", ".join(repr(extra) for extra in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _declared(key: str, schema: dict[str, Any]) -> bool:
    """A key named in ``properties`` or matching a ``patternProperties`` pattern; a pattern
    that cannot be checked counts as a match, so it never rejects what the cloud might take."""
    if key in schema.get("properties", {}):
        return True
    return any(_search(p, key) is not False for p in schema.get("patternProperties", {}))


@functools.cache
def _lenient_validator() -> Any:
    from jsonschema import Draft7Validator, validators

    return validators.extend(
        Draft7Validator,
        {
            "pattern": _safe_pattern,
            "patternProperties": _safe_pattern_properties,
            "additionalProperties": _safe_additional_properties,
            "format": lambda *_: iter(()),
        },
    )


_VALIDATORS: dict[tuple[str, int, bool], Any] = {}


def _validator_for(schema: ResourceSchema, read_back: bool = False) -> Any:
    key = (schema.type_name, id(schema.raw), read_back)
    if key not in _VALIDATORS:
        if len(_VALIDATORS) > 256:
            _VALIDATORS.clear()
        _VALIDATORS[key] = _build_validator(schema, read_back)
    return _VALIDATORS[key]


def _build_validator(schema: ResourceSchema, read_back: bool = False) -> Any:
    # The provider schema is itself a JSON schema of the resource model; required properties
    # that are read-only never come from the caller, so they are dropped from "required".
    doc = copy.deepcopy(dict(schema.raw))
    doc.pop("$schema", None)
    doc.pop("$id", None)
    not_given = _top_level(schema.read_only)
    if read_back:  # a property with write-only parts (Lambda's Code/ZipFile) is never read
        not_given |= {_top_segment(p) for p in schema.write_only if p.startswith("/")}
    doc["required"] = [p for p in doc.get("required", []) if p not in not_given]
    return _lenient_validator()(doc)


def _top_level(paths: frozenset[str]) -> set[str]:
    return {p.strip("/") for p in paths if p.count("/") == 1}


# --------------------------------------------------------------------------- patch documents


def validate_patch(schema: ResourceSchema, patch: object) -> list[dict[str, Any]]:
    """An RFC 6902 patch, bounded, that changes no read-only or create-only property."""
    if not isinstance(patch, list) or not patch:
        raise _bad_patch("it must be a non-empty JSON array of operations")
    size = len(canonical_json(patch))
    if size > MAX_PATCH_CHARS:
        raise _bad_patch(
            f"it is {size} characters of JSON; Cloud Control accepts {MAX_PATCH_CHARS}"
        )
    for index, op in enumerate(patch):
        _check_operation(index, op)
    frozen = _top_level(schema.read_only) | _top_level(schema.create_only)
    for index, op in enumerate(patch):
        for key in ("path", "from"):
            if key in op and op["op"] != "test":
                top = _top_segment(op[key])
                if top in frozen:
                    kind = "read-only" if top in _top_level(schema.read_only) else "create-only"
                    raise InvalidInput(
                        f"Patch operation {index} changes /{top}, a {kind} property of "
                        f"{schema.type_name}.",
                        next_step="Create-only properties need a new resource (create, then "
                        "delete the old one); read-only ones are set by AWS.",
                        field="patch_document",
                    )
    return patch


def apply_patch(properties: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """The properties after ``patch``; a patch that does not apply is the caller's error."""
    try:
        return jsonpatch.JsonPatch(patch).apply(properties, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise InvalidInput(
            f"The patch document does not apply to the resource's current properties: {exc}.",
            next_step="Read the resource with ${get_resource} and write the patch against what it "
            "returns.",
            field="patch_document",
        ) from exc


def _check_operation(index: int, op: object) -> None:
    if not isinstance(op, dict):
        raise _bad_patch(f"operation {index} is not an object")
    if op.get("op") not in PATCH_OPS:
        raise _bad_patch(
            f"operation {index} has op {op.get('op')!r}; use one of {sorted(PATCH_OPS)}"
        )
    _check_pointer(index, "path", op.get("path"))
    if op["op"] in {"add", "replace", "test"} and "value" not in op:
        raise _bad_patch(f"operation {index} ({op['op']}) has no 'value'")
    if op["op"] in {"move", "copy"}:
        _check_pointer(index, "from", op.get("from"))
    unknown = set(op) - {"op", "path", "value", "from"}
    if unknown:
        raise _bad_patch(f"operation {index} has unknown member(s) {sorted(unknown)}")


def _check_pointer(index: int, key: str, pointer: object) -> None:
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise _bad_patch(f"operation {index} needs '{key}' as a JSON pointer such as /Tags")
    try:
        jsonpointer.JsonPointer(pointer)
    except jsonpointer.JsonPointerException as exc:
        raise _bad_patch(f"operation {index} has an invalid '{key}': {exc}") from exc


def _top_segment(pointer: str) -> str:
    return str(jsonpointer.JsonPointer(pointer).parts[0])


def _bad_patch(problem: str) -> InvalidInput:
    return InvalidInput(
        f"The patch document is not a valid RFC 6902 JSON Patch: {problem}.",
        next_step='Pass a list such as [{"op": "replace", "path": "/Tags", "value": [...]}].',
        field="patch_document",
    )
