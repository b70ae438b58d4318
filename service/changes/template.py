"""A CloudFormation template for resources that already exist, from what ccstate knows.

``create_template`` (the AWS Labs tool) asks CloudFormation's IaC generator for a template of
existing resources. ccstate can build one itself, offline: each resource's properties come from
a live Cloud Control read, or, when the cloud cannot be read, from the properties the state
recorded. Properties AWS sets (``readOnlyProperties``) are left out, as are ``aws:*`` tags; a
value ccstate only knows as a salted fingerprint (a write-only or secret-looking value) becomes
a ``NoEcho`` template parameter, so the template never carries a secret nor a fake value.

Everything here is pure: ``build_template`` takes what was read and returns the template;
``render`` writes it as JSON or YAML.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ccstate.service.changes.redaction import is_redacted
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.rules import split_pointer
from ccstate.service.errors import CcstateError, InvalidInput, NotFound
from ccstate.service.names import validate_workspace
from ccstate.service.ports import CloudProvider, IacGenerator, ObjectStore, SchemaProvider
from ccstate.service.state.store import StateStore

log = logging.getLogger(__name__)

OutputFormat = Literal["JSON", "YAML"]
OUTPUT_FORMATS: tuple[str, ...] = ("JSON", "YAML")
POLICIES: tuple[str, ...] = ("RETAIN", "DELETE", "SNAPSHOT")
MAX_RESOURCES = 500  # what the IaC generator takes in one template
SYSTEM_TAG_PREFIX = "aws:"
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
MAX_LOGICAL_ID = 255

Source = Literal["live", "state"]


@dataclass(frozen=True)
class ResourceRef:
    """One resource asked for: its type and Cloud Control identifier (``a|b`` for compound)."""

    resource_type: str
    identifier: str


@dataclass(frozen=True)
class KnownResource:
    """What ccstate knows of one resource: its properties and where they came from."""

    ref: ResourceRef
    schema: ResourceSchema
    properties: dict[str, Any]
    source: Source
    region: str | None = None


@dataclass
class BuiltTemplate:
    template: dict[str, Any]
    resources: list[dict[str, Any]] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # NoEcho parameters to fill in

    def render(self, output_format: str) -> str:
        return render(self.template, output_format)


# --------------------------------------------------------------------------- input


def check_options(output_format: str, deletion_policy: str, update_replace_policy: str) -> str:
    """The output format in upper case; a clear error for an unknown format or policy."""
    fmt = (output_format or "YAML").upper()
    if fmt not in OUTPUT_FORMATS:
        raise InvalidInput(
            f"output_format must be JSON or YAML, not {output_format!r}.",
            next_step="Pass output_format='YAML' or output_format='JSON'.",
            field="output_format",
        )
    for name, value in (
        ("deletion_policy", deletion_policy),
        ("update_replace_policy", update_replace_policy),
    ):
        if value not in POLICIES:
            raise InvalidInput(
                f"{name} must be one of RETAIN, DELETE or SNAPSHOT, not {value!r}.",
                next_step=f"Pass {name}='RETAIN' (keeps the resource when the stack goes).",
                field=name,
            )
    return fmt


def resource_refs(resources: Sequence[Any] | None) -> list[ResourceRef]:
    """The IaC generator's ``[{"ResourceType", "ResourceIdentifier"}]`` as references.

    ``ResourceIdentifier`` is a map of primary-identifier properties (``{"BucketName": "b"}``)
    or a Cloud Control identifier string; the map is joined by ``identifier_from_map`` once the
    schema is known, so here it is kept in a canonical text form.
    """
    if not resources:
        raise InvalidInput(
            "create_template needs the resources to put in the template.",
            next_step='Pass resources=[{"ResourceType": "AWS::S3::Bucket", '
            '"ResourceIdentifier": {"BucketName": "my-bucket"}}] (load_state lists what '
            "ccstate manages).",
            field="resources",
        )
    if len(resources) > MAX_RESOURCES:
        raise InvalidInput(
            f"{len(resources)} resources is more than one template takes ({MAX_RESOURCES}).",
            next_step="Split the resources over several templates.",
            field="resources",
        )
    refs: list[ResourceRef] = []
    for index, item in enumerate(resources):
        if not isinstance(item, Mapping) or not {"ResourceType", "ResourceIdentifier"} <= set(item):
            raise InvalidInput(
                f"resources[{index}] needs 'ResourceType' and 'ResourceIdentifier'.",
                next_step='Write each resource as {"ResourceType": "AWS::S3::Bucket", '
                '"ResourceIdentifier": {"BucketName": "my-bucket"}}.',
                field="resources",
            )
        ident = item["ResourceIdentifier"]
        if isinstance(ident, Mapping):
            ident = json.dumps(dict(ident), sort_keys=True)
        if not isinstance(ident, str) or not ident:
            raise InvalidInput(
                f"resources[{index}].ResourceIdentifier must be a map or a non-empty string.",
                next_step='Give the primary identifier, e.g. {"BucketName": "my-bucket"}.',
                field="resources",
            )
        refs.append(ResourceRef(str(item["ResourceType"]), ident))
    return refs


def identifier_for(schema: ResourceSchema, given: str) -> str:
    """The Cloud Control identifier: a map of primary-identifier properties is joined by '|'
    in the schema's order; a plain string is already one."""
    if not given.startswith("{"):
        return given
    values = json.loads(given)
    names = [p.strip("/").split("/")[-1] for p in schema.primary_identifier]
    missing = [n for n in names if n not in values]
    if missing or not names:
        raise InvalidInput(
            f"The ResourceIdentifier {given} of {schema.type_name} lacks "
            f"{', '.join(missing) or 'its primary identifier'}.",
            next_step=f"Name {', '.join(names) or 'the identifier'} (the schema's primary "
            "identifier; get_resource_schema_information shows it).",
            field="resources",
        )
    return "|".join(str(values[n]) for n in names)


def identifier_map(schema: ResourceSchema, identifier: str) -> dict[str, str]:
    """The IaC generator's form of a Cloud Control identifier."""
    names = [p.strip("/").split("/")[-1] for p in schema.primary_identifier]
    parts = identifier.split("|") if len(names) > 1 else [identifier]
    if len(parts) != len(names):
        return {"Identifier": identifier}
    return dict(zip(names, parts, strict=True))


# --------------------------------------------------------------------------- building


def build_template(
    known: Iterable[KnownResource],
    *,
    deletion_policy: str = "RETAIN",
    update_replace_policy: str = "RETAIN",
    description: str | None = None,
) -> BuiltTemplate:
    template: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09"}
    if description:
        template["Description"] = description
    parameters: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    listed: list[dict[str, Any]] = []
    for item in known:
        logical = logical_id(item.ref.resource_type, item.ref.identifier, set(resources))
        props = writable_properties(item.schema, item.properties)
        props = _secrets_as_parameters(props, logical, parameters)
        resources[logical] = {
            "Type": item.ref.resource_type,
            "DeletionPolicy": deletion_policy,
            "UpdateReplacePolicy": update_replace_policy,
            "Properties": props,
        }
        listed.append(
            {
                "LogicalResourceId": logical,
                "ResourceType": item.ref.resource_type,
                "ResourceIdentifier": identifier_map(item.schema, item.ref.identifier),
                "identifier": item.ref.identifier,
                "region": item.region,
                "source": item.source,
            }
        )
    if parameters:
        template["Parameters"] = parameters
    template["Resources"] = resources
    return BuiltTemplate(template, listed, sorted(parameters))


def writable_properties(schema: ResourceSchema, properties: Mapping[str, Any]) -> dict[str, Any]:
    """What a template may set: without the properties AWS sets and without ``aws:*`` tags."""
    out = copy.deepcopy(dict(properties))
    for pointer in schema.read_only:
        _remove(out, split_pointer(pointer))
    tags = schema.tags_property
    if tags and tags.count("/") == 1:
        name = tags.strip("/")
        if name in out:
            out[name] = _without_system_tags(out[name])
            if out[name] in ([], {}):
                del out[name]
    return out


def logical_id(resource_type: str, identifier: str, taken: set[str]) -> str:
    """A readable, unique logical id: 'S3Bucket' + the identifier in CamelCase."""
    kind = "".join(resource_type.split("::")[1:])
    words = _NOT_ALNUM.split(identifier.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    base = (kind + "".join(w[:1].upper() + w[1:] for w in words if w))[: MAX_LOGICAL_ID - 4]
    base = _NOT_ALNUM.sub("", base) or "Resource"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}{n}", n + 1
    return candidate


def render(template: Mapping[str, Any], output_format: str) -> str:
    if output_format.upper() == "JSON":
        return json.dumps(template, indent=2, ensure_ascii=False)
    import yaml  # imported when a template is written: 0.04 s at every server start otherwise

    return yaml.safe_dump(dict(template), sort_keys=False, allow_unicode=True, width=100)


# --------------------------------------------------------------------------- helpers


def _remove(node: Any, path: list[str]) -> None:
    """Delete ``path`` ('*' = any index or key) from nested dicts and lists, if present."""
    if not path:
        return
    head, rest = path[0], path[1:]
    keys: list[Any]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            keys = list(range(len(node)))
        else:
            keys = [int(head)] if head.isdigit() and int(head) < len(node) else []
    else:
        return
    if rest:
        for key in keys:
            _remove(node[key], rest)
    else:
        for key in sorted(keys, reverse=True):
            del node[key]


def _without_system_tags(value: Any) -> Any:
    if isinstance(value, dict) and not is_redacted(value):
        return {k: v for k, v in value.items() if not str(k).startswith(SYSTEM_TAG_PREFIX)}
    if isinstance(value, list):
        return [
            t
            for t in value
            if not (isinstance(t, dict) and str(t.get("Key", "")).startswith(SYSTEM_TAG_PREFIX))
        ]
    return value


def _secrets_as_parameters(value: Any, where: str, parameters: dict[str, Any]) -> Any:
    """Replace each fingerprint with ``{"Ref": <NoEcho parameter>}`` named after its place."""
    if is_redacted(value):
        name = _NOT_ALNUM.sub("", where)[:MAX_LOGICAL_ID] or "Secret"
        candidate, n = name, 2
        while candidate in parameters:
            candidate, n = f"{name}{n}", n + 1
        parameters[candidate] = {
            "Type": "String",
            "NoEcho": True,
            "Description": f"ccstate keeps only a fingerprint of this value ({where}); "
            "supply it when you deploy.",
        }
        return {"Ref": candidate}
    if isinstance(value, dict):
        return {
            k: _secrets_as_parameters(v, f"{where}{_camel(str(k))}", parameters)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_secrets_as_parameters(v, f"{where}{i}", parameters) for i, v in enumerate(value)]
    return value


def _camel(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in _NOT_ALNUM.split(text) if w)


# --------------------------------------------------------------------------- the use case

TEMPLATE_ID_PREFIX = "ccstate-template-"
_TEMPLATE_ID = re.compile(r"^ccstate-template-[0-9a-f]{32}$")
Redact = Callable[[ResourceSchema, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TemplateRequest:
    template_name: str | None = None
    resources: Sequence[Any] | None = None
    output_format: str = "YAML"
    deletion_policy: str = "RETAIN"
    update_replace_policy: str = "RETAIN"
    template_id: str | None = None
    region: str | None = None


class TemplateService:
    """``create_template``: through the IaC generator when there is one, else (and whenever it
    fails) built here from live reads and the recorded state, and kept in the backend under
    ``<workspace>/templates/`` so a later call with its ``template_id`` finds it."""

    def __init__(
        self,
        *,
        cloud_for: Callable[[str | None], CloudProvider],
        schemas: SchemaProvider,
        store: StateStore,
        objects: ObjectStore,
        workspace: str,
        redact: Redact,
        generator: IacGenerator | None = None,
    ) -> None:
        self._cloud_for = cloud_for
        self._schemas = schemas
        self._store = store
        self._objects = objects
        self._prefix = f"{validate_workspace(workspace)}/templates"
        self._redact = redact
        self._generator = generator

    async def create(self, request: TemplateRequest) -> dict[str, Any]:
        fmt = check_options(
            request.output_format, request.deletion_policy, request.update_replace_policy
        )
        if request.template_id:
            return await self._existing(request.template_id, fmt)
        if not request.template_name:
            raise InvalidInput(
                "create_template needs a template_name (to start) or a template_id (to fetch).",
                next_step="Pass template_name and resources to build a template.",
                field="template_name",
            )
        refs = resource_refs(request.resources)
        generator_note = None
        if self._generator is not None:
            try:
                return await self._through_generator(request, refs)
            except CcstateError as exc:
                generator_note = f"The IaC generator is not available ({exc.message}); "
                log.info("IaC generator unavailable, building the template offline: %s", exc)
        return await self._offline(request, refs, fmt, generator_note)

    # ------------------------------------------------------------------ offline

    async def _offline(
        self,
        request: TemplateRequest,
        refs: list[ResourceRef],
        fmt: str,
        note: str | None,
    ) -> dict[str, Any]:
        known: list[KnownResource] = []
        warnings: list[str] = []
        for ref in refs:
            item, warning = await self._known(ref, request.region)
            known.append(item)
            if warning:
                warnings.append(warning)
        built = build_template(
            known,
            deletion_policy=request.deletion_policy,
            update_replace_policy=request.update_replace_policy,
            description=f"{request.template_name}: generated by ccstate from existing resources",
        )
        template_id = TEMPLATE_ID_PREFIX + secrets.token_hex(16)
        record = {
            "template_name": request.template_name,
            "template": built.template,
            "resources": built.resources,
            "parameters": built.parameters,
            "warnings": warnings,
        }
        await self._objects.put_if_absent(
            f"{self._prefix}/{template_id}.json", json.dumps(record).encode()
        )
        return self._completed(template_id, record, fmt, note)

    async def _known(
        self, ref: ResourceRef, region: str | None
    ) -> tuple[KnownResource, str | None]:
        schema = await self._schemas.get_schema(ref.resource_type)
        identifier = identifier_for(schema, ref.identifier)
        ref = ResourceRef(schema.type_name, identifier)
        recorded = await self._store.get_resource(identifier)
        if recorded is not None and recorded.resource_type != schema.type_name:
            recorded = None
        where = region or (recorded.region if recorded else None)
        try:
            found = await self._cloud_for(where).get_resource(schema.type_name, identifier)
        except (NotFound, InvalidInput):
            raise
        except CcstateError as exc:
            if recorded is None:
                raise
            warning = (
                f"{schema.type_name} '{identifier}' could not be read from AWS "
                f"({exc.message}); its properties are the ones the state recorded."
            )
            properties = recorded.current_properties
            return KnownResource(ref, schema, properties, "state", recorded.region), warning
        live = self._redact(schema, found.properties)
        return KnownResource(ref, schema, live, "live", where), None

    def _completed(
        self, template_id: str, record: dict[str, Any], fmt: str, note: str | None
    ) -> dict[str, Any]:
        message = "Template generation completed (built by ccstate from live reads and state)."
        if record["parameters"]:
            message += (
                " Values ccstate keeps only as fingerprints are NoEcho parameters: "
                + ", ".join(record["parameters"])
                + "."
            )
        if note:
            message = note + message
        return {
            "status": "COMPLETED",
            "template_id": template_id,
            "template_name": record["template_name"],
            "template": render(record["template"], fmt),
            "output_format": fmt,
            "resources": record["resources"],
            "parameters": record["parameters"],
            "warnings": record["warnings"],
            "source": "ccstate",
            "message": message,
        }

    # ------------------------------------------------------------------ fetch

    async def _existing(self, template_id: str, fmt: str) -> dict[str, Any]:
        if _TEMPLATE_ID.fullmatch(template_id):
            stored = await self._objects.get(f"{self._prefix}/{template_id}.json")
            if stored is None:
                raise NotFound(
                    f"No template {template_id} in this workspace.",
                    next_step="Start a new one with create_template(template_name, resources).",
                )
            return self._completed(template_id, json.loads(stored.body), fmt, None)
        if not template_id.startswith("arn:") or self._generator is None:
            raise InvalidInput(
                f"{template_id!r} is not a template id this server issued.",
                next_step="Pass the template_id an earlier create_template returned.",
                field="template_id",
            )
        status = await self._generator.status(template_id)
        if status.get("status") != "COMPLETE":
            state = str(status.get("status", "UNKNOWN"))
            return {
                "status": state,
                "template_id": template_id,
                "source": "iac_generator",
                "message": f"Template generation {state.lower()}.",
            }
        return {
            "status": "COMPLETED",
            "template_id": template_id,
            "template": await self._generator.template(template_id, fmt),
            "output_format": fmt,
            "resources": status.get("resources", []),
            "source": "iac_generator",
            "message": "Template generation completed.",
        }

    async def _through_generator(
        self, request: TemplateRequest, refs: list[ResourceRef]
    ) -> dict[str, Any]:
        assert self._generator is not None
        resources = []
        for ref in refs:
            schema = await self._schemas.get_schema(ref.resource_type)
            identifier = identifier_for(schema, ref.identifier)
            resources.append(
                {
                    "ResourceType": schema.type_name,
                    "ResourceIdentifier": identifier_map(schema, identifier),
                }
            )
        template_id = await self._generator.start(
            str(request.template_name),
            resources,
            deletion_policy=request.deletion_policy,
            update_replace_policy=request.update_replace_policy,
            region=request.region,
        )
        return {
            "status": "INITIATED",
            "template_id": template_id,
            "source": "iac_generator",
            "message": "Template generation initiated. Use the template_id to check status.",
        }
