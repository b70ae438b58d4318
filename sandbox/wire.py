"""The HTTP face: one WSGI application that serves Cloud Control (JSON 1.0,
``X-Amz-Target: CloudApiService.<Operation>``), CloudFormation ``DescribeType`` from the bundled
schemas, and hands every other request to moto."""

from __future__ import annotations

import functools
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from ccstate.backends.schemas import bundled_schema_document
from ccstate.sandbox.aws import context_from_authorization, scope_service
from ccstate.sandbox.cloudcontrol import CloudControl, pause
from ccstate.sandbox.errors import ApiError

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

TARGET_PREFIX = "CloudApiService."
OPERATIONS = frozenset(
    {
        "CreateResource",
        "GetResource",
        "UpdateResource",
        "DeleteResource",
        "ListResources",
        "GetResourceRequestStatus",
        "ListResourceRequests",
        "CancelResourceRequest",
    }
)


class SandboxApp:
    def __init__(
        self,
        cloudcontrol: CloudControl,
        moto_app: WsgiApp,
        *,
        latency_ms: int = 0,
        default_region: str = "us-east-1",
    ) -> None:
        self.cloudcontrol = cloudcontrol
        self.moto_app = moto_app
        self.latency_ms = latency_ms
        self.default_region = default_region
        self.endpoint_url = ""  # set once the server is bound

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(TARGET_PREFIX):
            return self._cloudcontrol(environ, start_response, target[len(TARGET_PREFIX) :])
        if scope_service(environ.get("HTTP_AUTHORIZATION", "")) == "cloudformation":
            body = _body(environ)
            form = parse_qs(body.decode("utf-8", "replace"))
            action = (form.get("Action") or [""])[0]
            if action == "DescribeType":
                return _describe_type(form, start_response)
            if action and not _moto_implements_cloudformation(action):
                return _unsupported_cloudformation(action, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
        return self.moto_app(environ, start_response)

    def _cloudcontrol(
        self, environ: dict[str, Any], start_response: StartResponse, operation: str
    ) -> Iterable[bytes]:
        started = time.monotonic()
        pause(self.latency_ms)
        aws = context_from_authorization(
            self.endpoint_url, environ.get("HTTP_AUTHORIZATION", ""), self.default_region
        )
        try:
            if operation not in OPERATIONS:
                raise ApiError("UnknownOperationException", f"Unknown operation {operation}.")
            params = _json_params(_body(environ))
            answer = getattr(self.cloudcontrol, operation)(params, aws)
            status, payload = "200 OK", answer
        except ApiError as exc:
            status = f"{exc.status} Bad Request"
            payload = {"__type": exc.code, "message": exc.message}
        except Exception as exc:
            log.exception("Cloud Control %s failed", operation)
            status = "500 Internal Server Error"
            payload = {"__type": "ServiceInternalErrorException", "message": repr(exc)}
        log.info("%s -> %s (%.0f ms)", operation, status[:3], 1000 * (time.monotonic() - started))
        return _respond(
            start_response, status, json.dumps(payload).encode(), "application/x-amz-json-1.0"
        )


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json_params(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError("SerializationException", f"Request body is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "Request body must be a JSON object.")
    return params


def _respond(
    start_response: StartResponse, status: str, body: bytes, content_type: str
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [body]


_CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


@functools.cache
def _moto_implements_cloudformation(action: str) -> bool:
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.utils import camelcase_to_underscores

    return callable(getattr(CloudFormationResponse, camelcase_to_underscores(action), None))


def _unsupported_cloudformation(action: str, start_response: StartResponse) -> list[bytes]:
    """What the sandbox answers for a CloudFormation call it lacks (the IaC generator's
    StartResourceScan, CreateGeneratedTemplate, ...): an AWS error a client can handle, where
    moto would answer an HTML 500."""
    message = (
        f"The ccstate sandbox does not implement CloudFormation {action}; it serves "
        "DescribeType and what moto implements (stacks). Use real AWS for this call."
    )
    body = (
        f'<ErrorResponse xmlns="{_CFN_NS}"><Error><Type>Sender</Type>'
        f"<Code>UnsupportedActionException</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return _respond(start_response, "400 Bad Request", body.encode(), "text/xml")


def _describe_type(form: dict[str, list[str]], start_response: StartResponse) -> list[bytes]:
    """CloudFormation DescribeType (query protocol) for public resource types."""
    type_name = (form.get("TypeName") or [""])[0]
    doc = bundled_schema_document(type_name) if type_name else None
    request_id = str(uuid.uuid4())
    if doc is None:
        body = (
            f'<ErrorResponse xmlns="{_CFN_NS}"><Error><Type>Sender</Type>'
            f"<Code>TypeNotFoundException</Code><Message>The type '{escape(type_name)}' cannot "
            f"be found.</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return _respond(start_response, "404 Not Found", body.encode(), "text/xml")
    arn = f"arn:aws:cloudformation:us-east-1::type/resource/{type_name.replace('::', '-')}"
    body = (
        f'<DescribeTypeResponse xmlns="{_CFN_NS}"><DescribeTypeResult>'
        f"<Arn>{escape(arn)}</Arn><Type>RESOURCE</Type><TypeName>{escape(type_name)}</TypeName>"
        f"<Schema>{escape(json.dumps(doc))}</Schema><Visibility>PUBLIC</Visibility>"
        f"<ProvisioningType>FULLY_MUTABLE</ProvisioningType><IsDefaultVersion>true"
        f"</IsDefaultVersion></DescribeTypeResult><ResponseMetadata><RequestId>{request_id}"
        f"</RequestId></ResponseMetadata></DescribeTypeResponse>"
    )
    return _respond(start_response, "200 OK", body.encode(), "text/xml")
