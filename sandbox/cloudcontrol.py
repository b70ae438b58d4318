"""The Cloud Control API operations, over the resource handlers.

Create, update and delete answer at once with an IN_PROGRESS ProgressEvent; the work runs on a
thread pool and ends SUCCESS, FAILED (with a HandlerErrorCode) or CANCEL_COMPLETE.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonpatch
from botocore.exceptions import ClientError
from ccstate.backends.schemas import bundled_schema_document
from ccstate.sandbox.aws import AwsContext
from ccstate.sandbox.errors import ApiError, HandlerError, handler_error_code, not_found, validation
from ccstate.sandbox.handlers import HANDLERS
from ccstate.sandbox.handlers.base import Handler, Model, error_code
from ccstate.sandbox.paths import value_at, without_paths
from ccstate.sandbox.requests import RequestStore, ResourceRequest, page
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.validation import schema_errors

log = logging.getLogger(__name__)

# The API exception a synchronous handler failure (GetResource, ListResources) surfaces as.
_API_EXCEPTION = {
    "NotFound": "ResourceNotFoundException",
    "AccessDenied": "AccessDeniedException",
    "AlreadyExists": "AlreadyExistsException",
    "InvalidRequest": "InvalidRequestException",
    "Throttling": "ThrottlingException",
    "ServiceLimitExceeded": "ServiceLimitExceededException",
    "ResourceConflict": "ResourceConflictException",
    "NotUpdatable": "NotUpdatableException",
    "GeneralServiceException": "GeneralServiceException",
}


class CloudControl:
    def __init__(self, *, operation_ms: int = 0, workers: int = 16) -> None:
        self.requests = RequestStore()
        self._operation_seconds = operation_ms / 1000
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ccapi-op")
        # Clear it to hold every create/update/delete IN_PROGRESS until it is set again (tests
        # interrupt a change while Cloud Control is still working, without timing).
        self.proceed = threading.Event()
        self.proceed.set()

    def close(self) -> None:
        self.proceed.set()
        self.requests.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- operations (names as on the wire) -----------------------------------------------

    def CreateResource(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        type_name = _required(params, "TypeName")
        schema, handler_class = _resolve(type_name)
        desired = _json_object(_required(params, "DesiredState"), "DesiredState")
        _check_properties(schema, handler_class, desired, creating=True)
        ident = desired.get(handler_class.identifier_property)
        request = ResourceRequest(
            operation="CREATE",
            type_name=type_name,
            identifier=ident if isinstance(ident, str) else None,
            client_token=params.get("ClientToken"),
            region=aws.region,
            fingerprint=_fingerprint("CREATE", type_name, desired),
        )
        invalid = _model_errors(schema, desired)

        def work(handler: Handler) -> tuple[str, Model]:
            if invalid:
                raise HandlerError("InvalidRequest", invalid)
            if handler.existing_identifier(desired) is not None:
                raise HandlerError(
                    "AlreadyExists", f"{type_name} '{ident or '(same name)'}' already exists."
                )
            created = handler.create(desired)
            request.identifier = created
            return created, handler.read(created)

        return self._submit(request, handler_class, aws, schema, work)

    def UpdateResource(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        type_name = _required(params, "TypeName")
        identifier = _required(params, "Identifier")
        schema, handler_class = _resolve(type_name)
        patch_text = _required(params, "PatchDocument")
        before = self._read(handler_class(aws), schema, identifier)
        after = _apply_patch(before, patch_text)
        _check_update(schema, handler_class, before, after)
        request = ResourceRequest(
            operation="UPDATE",
            type_name=type_name,
            identifier=identifier,
            client_token=params.get("ClientToken"),
            region=aws.region,
            fingerprint=_fingerprint("UPDATE", type_name, identifier, patch_text),
        )
        read_only = _top_level(schema.read_only)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        invalid = _model_errors(schema, after, only=changed)

        def work(handler: Handler) -> tuple[str, Model]:
            if invalid:
                raise HandlerError("InvalidRequest", invalid)
            current = handler.read(identifier)
            handler.update(
                identifier,
                {k: v for k, v in current.items() if k not in read_only},
                {k: v for k, v in after.items() if k not in read_only},
            )
            return identifier, handler.read(identifier)

        return self._submit(request, handler_class, aws, schema, work)

    def DeleteResource(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        type_name = _required(params, "TypeName")
        identifier = _required(params, "Identifier")
        schema, handler_class = _resolve(type_name)
        request = ResourceRequest(
            operation="DELETE",
            type_name=type_name,
            identifier=identifier,
            client_token=params.get("ClientToken"),
            region=aws.region,
            fingerprint=_fingerprint("DELETE", type_name, identifier),
        )

        def work(handler: Handler) -> tuple[str, None]:
            handler.delete(identifier)
            return identifier, None

        return self._submit(request, handler_class, aws, schema, work)

    def GetResource(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        type_name = _required(params, "TypeName")
        identifier = _required(params, "Identifier")
        schema, handler_class = _resolve(type_name)
        model = self._read(handler_class(aws), schema, identifier)
        return {
            "TypeName": type_name,
            "ResourceDescription": {"Identifier": identifier, "Properties": _dumps(model)},
        }

    def ListResources(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        type_name = _required(params, "TypeName")
        _, handler_class = _resolve(type_name)
        handler = handler_class(aws)
        identifiers = sorted(_synchronously(handler.list_identifiers))
        chunk, next_token = page(
            identifiers, params.get("NextToken"), params.get("MaxResults"), scope=type_name
        )
        out: dict[str, Any] = {
            "TypeName": type_name,
            "ResourceDescriptions": [
                {
                    "Identifier": ident,
                    "Properties": _dumps({handler_class.identifier_property: ident}),
                }
                for ident in chunk
            ],
        }
        if next_token:
            out["NextToken"] = next_token
        return out

    def GetResourceRequestStatus(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        request = self.requests.get(_required(params, "RequestToken"), aws.region)
        return {"ProgressEvent": request.event()}

    def CancelResourceRequest(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        request = self.requests.cancel(_required(params, "RequestToken"), aws.region)
        return {"ProgressEvent": request.event()}

    def ListResourceRequests(self, params: dict[str, Any], aws: AwsContext) -> dict[str, Any]:
        wanted = params.get("ResourceRequestStatusFilter") or {}
        found = self.requests.matching(
            list(wanted.get("Operations") or []),
            list(wanted.get("OperationStatuses") or []),
            aws.region,
        )
        chunk, next_token = page(
            found, params.get("NextToken"), params.get("MaxResults"), scope="requests"
        )
        out: dict[str, Any] = {"ResourceRequestStatusSummaries": [r.event() for r in chunk]}
        if next_token:
            out["NextToken"] = next_token
        return out

    # ---- machinery -----------------------------------------------------------------------

    def _read(self, handler: Handler, schema: ResourceSchema, identifier: str) -> Model:
        try:
            model = _synchronously(lambda: handler.read(identifier))
        except ApiError as exc:
            if exc.code == "ResourceNotFoundException":
                raise not_found(schema.type_name, identifier) from exc
            raise
        return without_paths(model, schema.write_only)

    def _submit(
        self,
        request: ResourceRequest,
        handler_class: type[Handler],
        aws: AwsContext,
        schema: ResourceSchema,
        work: Callable[[Handler], tuple[str, Model | None]],
    ) -> dict[str, Any]:
        request, is_new = self.requests.register(request)
        if is_new:
            self._pool.submit(self._run, request, handler_class, aws, schema, work)
        return {"ProgressEvent": request.event()}

    def _run(
        self,
        request: ResourceRequest,
        handler_class: type[Handler],
        aws: AwsContext,
        schema: ResourceSchema,
        work: Callable[[Handler], tuple[str, Model | None]],
    ) -> None:
        if request.cancel.wait(self._operation_seconds):
            self.requests.finish(request, "CANCEL_COMPLETE")
            return
        self.proceed.wait()
        try:
            identifier, model = work(handler_class(aws))
        except HandlerError as exc:
            self.requests.finish(
                request, "FAILED", error_code=exc.error_code, status_message=exc.message
            )
        except ClientError as exc:
            self.requests.finish(
                request,
                "FAILED",
                error_code=_handler_code(exc),
                status_message=str(exc),
            )
        except Exception as exc:
            log.exception("%s %s failed", request.operation, request.type_name)
            self.requests.finish(
                request,
                "FAILED",
                error_code="InternalFailure",
                status_message=f"The sandbox failed ({type(exc).__name__}: {exc}).",
            )
        else:
            shown = None if model is None else without_paths(model, schema.write_only)
            self.requests.finish(request, "SUCCESS", identifier=identifier, resource_model=shown)


# --------------------------------------------------------------------------- validation


@functools.cache
def _schema(type_name: str) -> ResourceSchema | None:
    doc = bundled_schema_document(type_name)
    return None if doc is None else ResourceSchema.from_document(doc)


def _resolve(type_name: str) -> tuple[ResourceSchema, type[Handler]]:
    schema = _schema(type_name)
    if schema is None:
        raise ApiError("TypeNotFoundException", f"The type '{type_name}' cannot be found.")
    handler_class = HANDLERS.get(type_name)
    if handler_class is None:
        raise ApiError(
            "UnsupportedActionException",
            f"The sandbox has no handler for {type_name}; supported types: "
            + ", ".join(sorted(HANDLERS)),
        )
    return schema, handler_class


def _required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise validation(
            f"1 validation error detected: Value null at '{name}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def _json_object(text: Any, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError as exc:
        raise validation(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise validation(f"{name} must be a JSON object.")
    return value


def _check_properties(
    schema: ResourceSchema, handler_class: type[Handler], model: Model, *, creating: bool
) -> None:
    unknown = sorted(set(model) - set(schema.properties))
    if unknown:
        raise validation(
            f"Model validation failed (#: extraneous key [{unknown[0]}] is not permitted)"
        )
    if creating:
        missing = [p for p in schema.raw.get("required", []) if p not in model]
        if missing:
            raise validation(f"Model validation failed (#: required key [{missing[0]}] not found)")
    allowed = handler_class.writable | {handler_class.identifier_property}
    allowed |= _top_level(schema.read_only)
    unsupported = sorted(set(model) - allowed)
    if unsupported:
        raise ApiError(
            "UnsupportedActionException",
            f"The sandbox handler for {schema.type_name} does not support property "
            f"'{unsupported[0]}'; it supports: {', '.join(sorted(handler_class.writable))}.",
        )


# JSON schema type names as CloudFormation's model validation reports them.
_TYPE_NAMES = {
    "integer": "Integer",
    "number": "Number",
    "string": "String",
    "boolean": "Boolean",
    "object": "JSONObject",
    "array": "JSONArray",
    "null": "Null",
}


def _model_errors(schema: ResourceSchema, model: Model, *, only: set[str] | None = None) -> str:
    """The model's schema violations as Cloud Control words them ("Model validation failed
    (#/VisibilityTimeout: expected type: Integer, found: String)"), or "" when it is valid.
    ``only``: report violations under these top-level properties alone (an update)."""
    problems = []
    for error in schema_errors(schema, model):
        path = list(error.absolute_path)
        if only is not None and (not path or path[0] not in only):
            continue
        where = "#" + "".join(f"/{p}" for p in path)
        if error.validator == "type":
            expected = error.validator_value
            expected = expected if isinstance(expected, list) else [expected]
            wanted = "/".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
            problems.append(
                f"{where}: expected type: {wanted}, found: {_json_type(error.instance)}"
            )
        else:
            problems.append(f"{where}: {error.message}")
    return f"Model validation failed ({'; '.join(problems)})" if problems else ""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    if isinstance(value, dict):
        return "JSONObject"
    return "Null"


def _apply_patch(before: Model, patch_text: str) -> Model:
    try:
        operations = json.loads(patch_text)
        return jsonpatch.JsonPatch(operations).apply(before)
    except (
        ValueError,
        TypeError,
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        AttributeError,
    ) as exc:
        raise validation(
            f"PatchDocument is not a valid RFC 6902 patch for this model: {exc}"
        ) from exc


def _check_update(
    schema: ResourceSchema, handler_class: type[Handler], before: Model, after: Model
) -> None:
    if not isinstance(after, dict):
        raise validation("PatchDocument must leave the resource model a JSON object.")
    for path in sorted(schema.read_only):
        if "*" not in path and value_at(before, path) != value_at(after, path):
            raise validation(f"Property {path} is read-only and cannot be changed.")
    for path in sorted(schema.create_only):
        if "*" not in path and value_at(before, path) != value_at(after, path):
            raise ApiError(
                "NotUpdatableException",
                f"Invalid patch update: createOnlyProperties [{path}] cannot be updated",
            )
    _check_properties(schema, handler_class, after, creating=False)


def _top_level(paths: frozenset[str]) -> frozenset[str]:
    """The top-level property names among schema paths like '/Arn' (not '/A/B')."""
    return frozenset(p.strip("/") for p in paths if p.count("/") == 1)


def _synchronously(call: Callable[[], Any]) -> Any:
    """Run a handler call inside an API operation, turning failures into API exceptions."""
    try:
        return call()
    except HandlerError as exc:
        code = _API_EXCEPTION.get(exc.error_code, "HandlerFailureException")
        raise ApiError(code, exc.message) from exc
    except ClientError as exc:
        code = _API_EXCEPTION.get(_handler_code(exc), "GeneralServiceException")
        raise ApiError(code, str(exc)) from exc


def _handler_code(exc: ClientError) -> str:
    """The HandlerErrorCode of a service error. A 403 is a refusal whatever its body says
    (botocore cannot read some services' error bodies and reports just the status)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 403:
        return "AccessDenied"
    return handler_error_code(error_code(exc))


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _dumps(model: Model) -> str:
    return json.dumps(model, sort_keys=True, default=str)


def pause(latency_ms: int) -> None:
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)
