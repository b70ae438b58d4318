"""CloudControlProvider against the sandbox's Cloud Control endpoint, over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import boto3
import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.sandbox import Sandbox
from ccstate.service.errors import InvalidInput, NotFound
from ccstate.service.ports import CloudProvider

BUCKET = "AWS::S3::Bucket"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
async def provider(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CloudControlProvider]:
    """A provider configured only by the environment, as a user's shell would set it."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    cloud = CloudControlProvider()
    yield cloud
    await cloud.close()


def bucket_name() -> str:
    return f"ccstate-it-{uuid.uuid4().hex[:12]}"


async def create_bucket(cloud: CloudControlProvider, name: str, **props: object) -> None:
    event = await cloud.create_resource(
        BUCKET, {"BucketName": name, **props}, client_token=str(uuid.uuid4())
    )
    done = await cloud.wait_for_request(event.request_token, timeout=30)
    assert done.operation_status == "SUCCESS", done


def test_provider_satisfies_the_port() -> None:
    assert isinstance(CloudControlProvider(), CloudProvider)


async def test_caller_identity_names_the_account_and_arn(provider: CloudControlProvider) -> None:
    me = await provider.caller_identity()
    assert me.account.isdigit()
    assert me.arn.startswith("arn:aws:")
    assert me.region == "us-east-1"


async def test_create_read_list_update_delete_a_bucket(provider: CloudControlProvider) -> None:
    name = bucket_name()
    await create_bucket(provider, name, Tags=[{"Key": "env", "Value": "dev"}])

    found = await provider.get_resource(BUCKET, name)
    assert found.identifier == name
    assert isinstance(found.properties, dict)
    assert {"Key": "env", "Value": "dev"} in found.properties["Tags"]

    page = await provider.list_resources(BUCKET)
    assert name in {r.identifier for r in page.resources}

    patch = [{"op": "replace", "path": "/Tags", "value": [{"Key": "env", "Value": "prod"}]}]
    event = await provider.update_resource(BUCKET, name, patch, client_token=str(uuid.uuid4()))
    assert event.operation == "UPDATE"
    done = await provider.wait_for_request(event.request_token, timeout=30)
    assert done.operation_status == "SUCCESS", done
    assert (await provider.get_resource(BUCKET, name)).properties["Tags"] == patch[0]["value"]

    event = await provider.delete_resource(BUCKET, name, client_token=str(uuid.uuid4()))
    done = await provider.wait_for_request(event.request_token, timeout=30)
    assert done.operation_status == "SUCCESS", done
    with pytest.raises(NotFound) as gone:
        await provider.get_resource(BUCKET, name)
    assert name in gone.value.message


async def test_a_change_made_out_of_band_is_what_get_resource_returns(
    provider: CloudControlProvider, sandbox: Sandbox
) -> None:
    name = bucket_name()
    await create_bucket(provider, name)
    s3 = boto3.client("s3", endpoint_url=sandbox.endpoint_url, region_name="us-east-1")
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
    found = await provider.get_resource(BUCKET, name)
    assert found.properties["Tags"] == [{"Key": "owner", "Value": "ops"}]


async def test_failed_request_reports_its_error_code(provider: CloudControlProvider) -> None:
    name = bucket_name()
    await create_bucket(provider, name)
    event = await provider.create_resource(
        BUCKET, {"BucketName": name}, client_token=str(uuid.uuid4())
    )
    done = await provider.wait_for_request(event.request_token, timeout=30)
    assert done.operation_status == "FAILED"
    assert done.error_code == "AlreadyExists"
    assert done.is_terminal


async def test_wait_returns_the_last_event_when_time_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Sandbox(operation_ms=3000) as slow:
        for name, value in slow.env().items():
            monkeypatch.setenv(name, value)
        async with CloudControlProvider() as cloud:
            event = await cloud.create_resource(
                BUCKET, {"BucketName": bucket_name()}, client_token=str(uuid.uuid4())
            )
            pending = await cloud.wait_for_request(event.request_token, timeout=0.1)
            assert not pending.is_terminal
            done = await cloud.wait_for_request(event.request_token, timeout=60)
            assert done.operation_status == "SUCCESS"


async def test_unknown_resources_and_types_are_clear_errors(
    provider: CloudControlProvider,
) -> None:
    with pytest.raises(NotFound) as missing:
        await provider.get_resource(BUCKET, "no-such-bucket-ccstate")
    assert "no-such-bucket-ccstate" in missing.value.message
    assert missing.value.next_step
    with pytest.raises(InvalidInput) as unknown_type:
        await provider.get_resource("AWS::Nope::Thing", "x")
    assert unknown_type.value.details["aws_code"] == "TypeNotFoundException"
    name = bucket_name()
    await create_bucket(provider, name)
    with pytest.raises(InvalidInput) as bad_patch:
        await provider.update_resource(
            BUCKET, name, [{"op": "jump", "path": "/Tags"}], client_token=str(uuid.uuid4())
        )
    assert bad_patch.value.details["aws_code"] == "ValidationException"
    with pytest.raises(NotFound):
        await provider.get_request_status("no-such-request")


async def test_explicit_endpoint_wins_over_the_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
        page = await cloud.list_resources(BUCKET)
    assert isinstance(page.resources, list)


async def test_a_replayed_client_token_is_the_same_request_not_a_second_change(
    provider: CloudControlProvider, sandbox: Sandbox
) -> None:
    """The executor's ClientToken comes from the execution token: a retried call (a lost
    answer, a replay) must find the original request, never make a second one."""
    name = bucket_name()
    token = uuid.uuid4().hex
    first = await provider.create_resource(BUCKET, {"BucketName": name}, client_token=token)
    again = await provider.create_resource(BUCKET, {"BucketName": name}, client_token=token)
    assert again.request_token == first.request_token
    done = await provider.wait_for_request(first.request_token, timeout=30)
    assert done.operation_status == "SUCCESS", done

    with pytest.raises(InvalidInput) as conflict:  # the same token for another change
        await provider.create_resource(BUCKET, {"BucketName": bucket_name()}, client_token=token)
    assert conflict.value.details["aws_code"] == "ClientTokenConflictException"


async def test_requests_are_listed_by_operation_for_a_token_never_recorded(
    provider: CloudControlProvider,
) -> None:
    name = bucket_name()
    event = await provider.create_resource(
        BUCKET, {"BucketName": name}, client_token=str(uuid.uuid4())
    )
    await provider.wait_for_request(event.request_token, timeout=30)

    creates = await provider.list_resource_requests("CREATE")
    deletes = await provider.list_resource_requests("DELETE")

    mine = [e for e in creates if e.request_token == event.request_token]
    assert [(e.identifier, e.operation_status) for e in mine] == [(name, "SUCCESS")]
    assert all(e.operation == "DELETE" for e in deletes)
