"""create_template built offline: from live reads, or the recorded state when AWS cannot be
read; read-only properties and aws:* tags left out; fingerprints as NoEcho parameters.

The cloud is a stand-in serving resource models from a dict (as in tests/unit/drift); the
state store, object store and schemas are the real ones. The sandbox run is in
tests/system/mcp/test_awslabs_compat.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from ccstate.backends.memory import MemoryObjectStore
from ccstate.backends.schemas import CloudFormationSchemaProvider
from ccstate.service.changes.redaction import redacted
from ccstate.service.changes.template import (
    TemplateRequest,
    TemplateService,
    identifier_for,
    logical_id,
)
from ccstate.service.errors import BackendError, InvalidInput, NotFound
from ccstate.service.ports import ResourceDescription
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

QUEUE = "AWS::SQS::Queue"
URL = "https://sqs.us-west-2.amazonaws.com/123456789012/jobs"
SALT = b"s" * 32


class Cloud:
    """GetResource over a dict; ``down`` makes every read fail as an unreachable AWS would."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.down = False
        self.regions: list[str | None] = []

    async def get_resource(self, type_name: str, identifier: str) -> ResourceDescription:
        if self.down:
            raise BackendError("Could not connect to the endpoint URL.")
        if identifier not in self.models:
            raise NotFound(f"{type_name} {identifier} does not exist.")
        return ResourceDescription(
            type_name, identifier, json.loads(json.dumps(self.models[identifier]))
        )


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


@pytest.fixture
def store() -> StateStore:
    return StateStore(MemoryObjectStore(), "default")


@pytest.fixture
def service(cloud: Cloud, store: StateStore) -> TemplateService:
    def cloud_for(region: str | None) -> Cloud:
        cloud.regions.append(region)
        return cloud

    return TemplateService(
        cloud_for=cloud_for,  # type: ignore[arg-type]
        schemas=CloudFormationSchemaProvider(offline=True),
        store=store,
        objects=MemoryObjectStore(),
        workspace="default",
        redact=lambda schema, props: props,
    )


def queue(**extra: Any) -> dict[str, Any]:
    return {
        "QueueName": "jobs",
        "QueueUrl": URL,
        "Arn": "arn:aws:sqs:us-west-2:123456789012:jobs",
        "VisibilityTimeout": 45,
        "Tags": [
            {"Key": "team", "Value": "a"},
            {"Key": "aws:cloudformation:stack-name", "Value": "s"},
        ],
        **extra,
    }


async def record(store: StateStore, properties: dict[str, Any]) -> None:
    change = ResourceChange(
        identifier=URL,
        resource_type=QUEUE,
        operation="create",
        region="us-west-2",
        properties_after=properties,
    )
    await store.commit([change], CommitMeta(principal=Principal(user="alice")))


REQUEST = TemplateRequest(
    template_name="t",
    resources=[{"ResourceType": QUEUE, "ResourceIdentifier": {"QueueUrl": URL}}],
)


async def test_a_live_read_makes_the_template(service: TemplateService, cloud: Cloud) -> None:
    cloud.models[URL] = queue()

    done = await service.create(REQUEST)

    template = yaml.safe_load(done["template"])
    (resource,) = template["Resources"].values()
    assert resource["Type"] == QUEUE
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "RETAIN"
    assert resource["Properties"]["VisibilityTimeout"] == 45
    assert "Arn" not in resource["Properties"]
    assert resource["Properties"]["Tags"] == [{"Key": "team", "Value": "a"}]
    assert done["resources"][0]["source"] == "live"


async def test_the_recorded_state_stands_in_when_aws_cannot_be_read(
    service: TemplateService, cloud: Cloud, store: StateStore
) -> None:
    await record(store, queue(VisibilityTimeout=60))
    cloud.down = True

    done = await service.create(TemplateRequest(**{**REQUEST.__dict__, "output_format": "JSON"}))

    (resource,) = json.loads(done["template"])["Resources"].values()
    assert resource["Properties"]["VisibilityTimeout"] == 60
    assert done["resources"][0]["source"] == "state"
    assert done["resources"][0]["region"] == "us-west-2"
    assert "could not be read from AWS" in done["warnings"][0]
    assert cloud.regions == ["us-west-2"]  # the read went to the resource's own region


async def test_a_fingerprint_becomes_a_noecho_parameter(
    service: TemplateService, cloud: Cloud, store: StateStore
) -> None:
    await record(store, queue(RedrivePolicy={"secret": redacted("x", SALT)}))
    cloud.down = True

    done = await service.create(REQUEST)

    template = yaml.safe_load(done["template"])
    (name,) = template["Parameters"]
    assert template["Parameters"][name]["NoEcho"] is True
    (resource,) = template["Resources"].values()
    assert resource["Properties"]["RedrivePolicy"]["secret"] == {"Ref": name}
    assert "hmac-sha256" not in done["template"]


async def test_a_template_id_finds_the_template_again(
    service: TemplateService, cloud: Cloud
) -> None:
    cloud.models[URL] = queue()
    first = await service.create(REQUEST)

    again = await service.create(TemplateRequest(template_id=first["template_id"]))

    assert again["status"] == "COMPLETED"
    assert again["template"] == first["template"]


async def test_a_resource_that_does_not_exist_is_named(service: TemplateService) -> None:
    with pytest.raises(NotFound):
        await service.create(REQUEST)


@pytest.mark.parametrize(
    "field, value",
    [("output_format", "XML"), ("deletion_policy", "KEEP"), ("resources", [{"x": 1}])],
)
async def test_bad_options_are_refused_clearly(
    service: TemplateService, field: str, value: Any
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.create(TemplateRequest(**{**REQUEST.__dict__, field: value}))
    assert refused.value.details["field"] == field
    assert refused.value.next_step


async def test_a_compound_identifier_is_joined_in_schema_order() -> None:
    schemas = CloudFormationSchemaProvider(offline=True)
    schema = await schemas.get_schema("AWS::IAM::RolePolicy")
    given = json.dumps({"RoleName": "r", "PolicyName": "p"}, sort_keys=True)
    assert identifier_for(schema, given) == "p|r"


def test_logical_ids_are_readable_and_unique() -> None:
    taken: set[str] = set()
    first = logical_id("AWS::S3::Bucket", "my-bucket", taken)
    taken.add(first)
    assert first == "S3BucketMyBucket"
    assert logical_id("AWS::S3::Bucket", "my_bucket", taken) == "S3BucketMyBucket2"
    assert logical_id(QUEUE, URL, set()) == "SQSQueueJobs"
