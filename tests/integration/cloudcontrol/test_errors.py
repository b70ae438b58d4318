"""How CloudControlProvider meets AWS's refusals, against a scripted endpoint on 127.0.0.1.

The endpoint answers Cloud Control calls from a script (one answer per request, over real HTTP)
and STS GetCallerIdentity with a fixed identity, so retries and error translation are observed
from the outside: how many requests arrived and what the caller was told.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.service.errors import AccessDenied, BackendError, InvalidInput, NotFound

ALICE = "arn:aws:iam::123456789012:user/alice"
IDENTITY = f"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>{ALICE}</Arn><UserId>AIDAEXAMPLE</UserId>
<Account>123456789012</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"""
FOUND = {
    "TypeName": "AWS::S3::Bucket",
    "ResourceDescription": {"Identifier": "demo", "Properties": '{"BucketName": "demo"}'},
}


@dataclass
class ScriptedEndpoint:
    url: str = ""
    answers: list[tuple[int, dict]] = field(default_factory=list)
    cloudcontrol_calls: int = 0


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ScriptedEndpoint]:
    state = ScriptedEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("X-Amz-Target", "").startswith("CloudApiService."):
                state.cloudcontrol_calls += 1
                status, answer = state.answers.pop(0) if state.answers else (200, FOUND)
                self._reply(status, json.dumps(answer).encode(), "application/x-amz-json-1.0")
            elif b"GetCallerIdentity" in body:
                self._reply(200, IDENTITY.encode(), "text/xml")
            else:
                self._reply(400, b"{}", "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
async def cloud(endpoint: ScriptedEndpoint) -> AsyncIterator[CloudControlProvider]:
    endpoint.answers.clear()
    endpoint.cloudcontrol_calls = 0
    provider = CloudControlProvider(endpoint_url=endpoint.url, region="us-east-1")
    yield provider
    await provider.close()


def error(code: str, message: str = "refused") -> dict:
    return {"__type": code, "message": message}


async def test_throttling_and_server_errors_are_retried(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers += [
        (400, error("ThrottlingException", "Rate exceeded")),
        (500, error("ServiceInternalErrorException")),
    ]
    found = await cloud.get_resource("AWS::S3::Bucket", "demo")
    assert found.properties == {"BucketName": "demo"}
    assert endpoint.cloudcontrol_calls == 3


async def test_retries_give_up_after_five_attempts_with_the_last_error(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers += [(400, error("ThrottlingException", "Rate exceeded"))] * 6
    with pytest.raises(BackendError) as gave_up:
        await cloud.get_resource("AWS::S3::Bucket", "demo")
    assert "ThrottlingException" in gave_up.value.message
    assert endpoint.cloudcontrol_calls == 5


async def test_a_refusal_of_our_request_is_not_retried(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers.append((400, error("ValidationException", "Model validation failed")))
    with pytest.raises(InvalidInput) as refused:
        await cloud.create_resource("AWS::S3::Bucket", {"Bad": 1}, client_token="t-1")
    assert "Model validation failed" in refused.value.message
    assert endpoint.cloudcontrol_calls == 1


async def test_access_denied_names_the_identity_and_the_action(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers.append((400, error("AccessDeniedException", "not authorized")))
    with pytest.raises(AccessDenied) as denied:
        await cloud.delete_resource("AWS::S3::Bucket", "demo", client_token="t-2")
    assert ALICE in denied.value.message
    assert "cloudformation:DeleteResource" in denied.value.message
    assert "'demo'" in denied.value.message
    assert denied.value.next_step


@pytest.mark.parametrize(
    ("code", "advice"),
    [("ExpiredTokenException", "expired"), ("UnrecognizedClientException", "does not recognise")],
)
async def test_credential_problems_say_how_to_fix_them(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint, code: str, advice: str
) -> None:
    endpoint.answers.append((400, error(code)))
    with pytest.raises(AccessDenied) as denied:
        await cloud.list_resources("AWS::S3::Bucket")
    assert advice in denied.value.next_step


async def test_other_codes_are_backend_errors_and_not_found_is_not_found(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers += [
        (400, error("HandlerInternalFailureException", "boom")),
        (400, error("ResourceNotFoundException", "gone")),
    ]
    with pytest.raises(BackendError) as failed:
        await cloud.get_resource("AWS::S3::Bucket", "demo")
    assert not isinstance(failed.value, AccessDenied)
    assert "HandlerInternalFailureException" in failed.value.message
    with pytest.raises(NotFound):
        await cloud.get_resource("AWS::S3::Bucket", "demo")


async def test_progress_events_carry_parsed_models(
    cloud: CloudControlProvider, endpoint: ScriptedEndpoint
) -> None:
    endpoint.answers.append(
        (
            200,
            {
                "ProgressEvent": {
                    "RequestToken": "r-1",
                    "Operation": "CREATE",
                    "OperationStatus": "SUCCESS",
                    "TypeName": "AWS::S3::Bucket",
                    "Identifier": "demo",
                    "ResourceModel": '{"BucketName": "demo", "Arn": "arn:aws:s3:::demo"}',
                    "EventTime": 1735689600,
                }
            },
        )
    )
    event = await cloud.get_request_status("r-1")
    assert event.resource_model == {"BucketName": "demo", "Arn": "arn:aws:s3:::demo"}
    assert event.is_terminal
    assert event.event_time is not None and event.event_time.year == 2025
