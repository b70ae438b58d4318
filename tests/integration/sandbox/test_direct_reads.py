"""GetResource of a queue reads moto's SQS backend directly (no SQS calls): the answers are the
ones GetQueueAttributes and ListQueueTags give, and whatever watches moto's requests still sees
those calls."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ccstate.sandbox import Sandbox
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.moto_api import recorder

from .conftest import create, get, unique

QUEUE = "AWS::SQS::Queue"


def _moto_api(sandbox: Sandbox, action: str) -> bytes:
    url = f"{sandbox.endpoint_url}/moto-api/recorder/{action}"
    method = "GET" if action == "download-recording" else "POST"
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return bytes(answer.read())


@pytest.fixture
def recording(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's request recorder on (writing under tmp_path) for the test, then off again."""
    monkeypatch.setattr(recorder, "_location", str(tmp_path / "moto_recording"))
    _moto_api(sandbox, "reset-recording")
    _moto_api(sandbox, "start-recording")
    try:
        yield
    finally:
        _moto_api(sandbox, "stop-recording")


def _recorded_sqs_actions(sandbox: Sandbox) -> list[str]:
    lines = _moto_api(sandbox, "download-recording").decode().splitlines()
    targets = [json.loads(line)["headers"].get("X-Amz-Target", "") for line in lines if line]
    return [t.split(".", 1)[1] for t in targets if t.startswith("AmazonSQS.")]


def _queues(cc: Any, aws: Callable[[str], Any]) -> list[str]:
    """Queues with every kind of attribute a queue model carries, created through Cloud Control
    and out of band."""
    dead_letter = create(cc, QUEUE, {"QueueName": unique("dlq")})["Identifier"]
    dead_letter_arn = get(cc, QUEUE, dead_letter)["Arn"]
    desired = [
        {"QueueName": unique("plain")},
        {
            "QueueName": unique("fifo") + ".fifo",
            "FifoQueue": True,
            "ContentBasedDeduplication": True,
            "DelaySeconds": 5,
            "KmsMasterKeyId": "alias/aws/sqs",
            "Tags": [{"Key": "team", "Value": "red"}, {"Key": "env", "Value": "dev"}],
        },
        {
            "QueueName": unique("redrive"),
            "VisibilityTimeout": 120,
            "RedrivePolicy": {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 3},
        },
    ]
    urls = [dead_letter, *(create(cc, QUEUE, d)["Identifier"] for d in desired)]
    sqs = aws("sqs")
    out_of_band = sqs.create_queue(QueueName=unique("oob"), tags={"owner": "someone"})["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=out_of_band, Attributes={"MaximumMessageSize": "2048"})
    return [*urls, out_of_band]


def test_queue_models_match_the_sqs_api_answers(
    sandbox: Sandbox, cc: Any, aws: Callable[[str], Any], request: pytest.FixtureRequest
) -> None:
    urls = _queues(cc, aws)
    direct = [get(cc, QUEUE, url) for url in urls]
    request.getfixturevalue("recording")  # from here on, handler reads go through moto's API

    through_api = [get(cc, QUEUE, url) for url in urls]

    assert direct == through_api
    assert _recorded_sqs_actions(sandbox).count("GetQueueAttributes") == len(urls)
    fifo = direct[2]
    assert fifo["FifoQueue"] is True and fifo["DelaySeconds"] == 5
    assert fifo["Tags"] == [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "red"}]
    assert direct[3]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert direct[4]["MaximumMessageSize"] == 2048


@pytest.mark.usefixtures("recording")
def test_recorded_requests_show_the_sqs_calls_of_a_get_resource(
    sandbox: Sandbox, cc: Any, aws: Callable[[str], Any]
) -> None:
    url = aws("sqs").create_queue(QueueName=unique("rec"))["QueueUrl"]

    get(cc, QUEUE, url)

    assert _recorded_sqs_actions(sandbox)[-2:] == ["GetQueueAttributes", "ListQueueTags"]


@pytest.mark.parametrize("through_api", [False, True], ids=["direct", "through-api"])
def test_missing_queue_is_not_found_either_way(
    cc: Any, through_api: bool, request: pytest.FixtureRequest
) -> None:
    if through_api:
        request.getfixturevalue("recording")
    with pytest.raises(cc.exceptions.ResourceNotFoundException, match="was not found"):
        cc.get_resource(TypeName=QUEUE, Identifier="http://127.0.0.1/123456789012/nope")


def test_a_queue_is_read_in_the_callers_account(sandbox: Sandbox) -> None:
    """Credentials of an assumed role in another account see that account's queues only."""
    endpoint = {"endpoint_url": sandbox.endpoint_url, "region_name": "us-east-1"}
    default = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    creds = boto3.client("sts", **endpoint, **default).assume_role(
        RoleArn="arn:aws:iam::111111111111:role/other", RoleSessionName="drift"
    )["Credentials"]
    other = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    url = boto3.client("sqs", **endpoint, **other).create_queue(QueueName=unique("acct"))[
        "QueueUrl"
    ]

    theirs = boto3.client("cloudcontrol", **endpoint, **other)
    ours = boto3.client("cloudcontrol", **endpoint, **default)

    assert get(theirs, QUEUE, url)["Arn"].split(":")[4] == "111111111111"
    with pytest.raises(ours.exceptions.ResourceNotFoundException):
        ours.get_resource(TypeName=QUEUE, Identifier=url)


def test_with_moto_iam_authorization_on_unknown_credentials_cannot_read_a_queue(
    cc: Any, aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = aws("sqs").create_queue(QueueName=unique("auth"))["QueueUrl"]
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)

    with pytest.raises(ClientError, match="InvalidClientTokenId") as refused:
        cc.get_resource(TypeName=QUEUE, Identifier=url)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
