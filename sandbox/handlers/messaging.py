"""AWS::SQS::Queue (identified by QueueUrl) and AWS::SNS::Topic (identified by TopicArn).

A queue's read is what a drift scan asks for most: when the sandbox's own moto serves the
endpoint, it reads the queue's attributes and tags from moto's SQS backend in one step, with the
same backend calls moto's GetQueueAttributes and ListQueueTags make, instead of two SQS calls.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.handlers.attributes import (
    BOOLEAN,
    INTEGER,
    JSON_OBJECT,
    STRING,
    AttributeHandler,
)
from ccstate.sandbox.handlers.base import (
    Model,
    dict_to_tags,
    is_not_found,
    model_tags,
    sync_tags,
    with_tags,
)
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import sqs_backends


class QueueHandler(AttributeHandler):
    type_name = "AWS::SQS::Queue"
    service = "sqs"
    identifier_property = "QueueUrl"
    attributes = {
        "DelaySeconds": ("DelaySeconds", INTEGER),
        "MaximumMessageSize": ("MaximumMessageSize", INTEGER),
        "MessageRetentionPeriod": ("MessageRetentionPeriod", INTEGER),
        "ReceiveMessageWaitTimeSeconds": ("ReceiveMessageWaitTimeSeconds", INTEGER),
        "VisibilityTimeout": ("VisibilityTimeout", INTEGER),
        "FifoQueue": ("FifoQueue", BOOLEAN),
        "ContentBasedDeduplication": ("ContentBasedDeduplication", BOOLEAN),
        "KmsMasterKeyId": ("KmsMasterKeyId", STRING),
        "SqsManagedSseEnabled": ("SqsManagedSseEnabled", BOOLEAN),
        "RedrivePolicy": ("RedrivePolicy", JSON_OBJECT),
    }
    writable = frozenset({"QueueName", "Tags", *attributes})
    reset = {  # SQS's own defaults
        "DelaySeconds": "0",
        "MaximumMessageSize": "262144",
        "MessageRetentionPeriod": "345600",
        "ReceiveMessageWaitTimeSeconds": "0",
        "VisibilityTimeout": "30",
    }

    def create(self, model: Model) -> str:
        name = model.get("QueueName") or self._generated(model)
        tags = model_tags(model.get("Tags"))
        answer = self.client.create_queue(
            QueueName=name, Attributes=self.to_service(model), tags=tags
        )
        return str(answer["QueueUrl"])

    def existing_identifier(self, model: Model) -> str | None:
        name = model.get("QueueName")
        if not name:
            return None
        try:
            return str(self.client.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if is_not_found(exc, "AWS.SimpleQueueService.NonExistentQueue"):
                return None
            raise

    def read(self, identifier: str) -> Model:
        try:
            attrs, tags = self._attributes_and_tags(identifier)
        except QueueDoesNotExist as exc:
            raise self.not_found(identifier) from exc
        except ClientError as exc:
            if is_not_found(exc, "AWS.SimpleQueueService.NonExistentQueue"):
                raise self.not_found(identifier) from exc
            raise
        model: Model = {
            "QueueUrl": identifier,
            "QueueName": identifier.rstrip("/").rsplit("/", 1)[-1],
            "Arn": attrs["QueueArn"],
            **self.from_service(attrs),
        }
        return with_tags(model, tags)

    def _attributes_and_tags(self, identifier: str) -> tuple[dict[str, str], dict[str, str]]:
        backend = self.aws.moto_backend(sqs_backends)
        if backend is not None:
            return _attributes_and_tags_in(backend, identifier)
        attrs = self.client.get_queue_attributes(QueueUrl=identifier, AttributeNames=["All"])
        tags = self.client.list_queue_tags(QueueUrl=identifier).get("Tags", {})
        return attrs["Attributes"], tags

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_queue(QueueUrl=identifier)

    def list_identifiers(self) -> list[str]:
        return list(self.client.list_queues().get("QueueUrls", []))

    def set_attribute(self, identifier: str, name: str, value: str) -> None:
        self.client.set_queue_attributes(QueueUrl=identifier, Attributes={name: value})

    def set_Tags(self, identifier: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_queue(QueueUrl=identifier, Tags=tags),
            lambda keys: self.client.untag_queue(QueueUrl=identifier, TagKeys=keys),
        )

    def _generated(self, model: Model) -> str:
        name = self.generated_name(75)
        return name + ".fifo" if model.get("FifoQueue") else name


def _attributes_and_tags_in(backend: Any, queue_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """What GetQueueAttributes(All) and ListQueueTags answer, from moto's SQS backend: moto's
    responses name the queue by the URL's last segment and send attribute values as strings."""
    name = queue_url.split("/")[-1] if queue_url.startswith(("http://", "https://")) else queue_url
    attrs = backend.get_queue_attributes(name, ["All"])
    tags = backend.list_queue_tags(name).tags
    return {k: str(v) for k, v in attrs.items() if v is not None}, dict(tags)


class TopicHandler(AttributeHandler):
    type_name = "AWS::SNS::Topic"
    service = "sns"
    identifier_property = "TopicArn"
    attributes = {
        "DisplayName": ("DisplayName", STRING),
        "KmsMasterKeyId": ("KmsMasterKeyId", STRING),
        "FifoTopic": ("FifoTopic", BOOLEAN),
        "ContentBasedDeduplication": ("ContentBasedDeduplication", BOOLEAN),
        "SignatureVersion": ("SignatureVersion", STRING),
        "TracingConfig": ("TracingConfig", STRING),
    }
    defaults = {"FifoTopic": "false", "ContentBasedDeduplication": "false", "SignatureVersion": "1"}
    writable = frozenset({"TopicName", "Tags", *attributes})

    def create(self, model: Model) -> str:
        name = model.get("TopicName") or self.generated_name(250)
        kwargs: dict[str, Any] = {"Name": name, "Attributes": self.to_service(model)}
        tags = model_tags(model.get("Tags"))
        if tags:
            kwargs["Tags"] = dict_to_tags(tags)
        return str(self.client.create_topic(**kwargs)["TopicArn"])

    def existing_identifier(self, model: Model) -> str | None:
        name = model.get("TopicName")
        if not name:
            return None
        arn = self.aws.arn("sns", name)
        return arn if self.exists(arn) else None

    def read(self, identifier: str) -> Model:
        try:
            attrs = self.client.get_topic_attributes(TopicArn=identifier)["Attributes"]
            tags = self.client.list_tags_for_resource(ResourceArn=identifier).get("Tags", [])
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        model: Model = {
            "TopicArn": identifier,
            "TopicName": identifier.rsplit(":", 1)[-1],
            **self.from_service(attrs),
        }
        return with_tags(model, model_tags(tags))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_topic(TopicArn=identifier)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_topics").paginate()
        return [t["TopicArn"] for page in pages for t in page.get("Topics", [])]

    def set_attribute(self, identifier: str, name: str, value: str) -> None:
        self.client.set_topic_attributes(
            TopicArn=identifier, AttributeName=name, AttributeValue=value
        )

    def set_Tags(self, identifier: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(ResourceArn=identifier, Tags=dict_to_tags(tags)),
            lambda keys: self.client.untag_resource(ResourceArn=identifier, TagKeys=keys),
        )
