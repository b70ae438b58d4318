"""IacGenerator on CloudFormation's IaC generator API (CreateGeneratedTemplate and friends).

Used by ``create_template`` when the server talks to real AWS; any failure (no such API on the
endpoint, access denied, throttling beyond the retries) is a ``BackendError``, and the use case
then builds the template itself.
"""

from __future__ import annotations

from typing import Any

from ccstate.backends.aws import AWS_ERRORS, call_with_retry, translate
from ccstate.backends.cloudcontrol import CloudControlProvider


class CloudFormationIacGenerator:
    def __init__(self, cloud: CloudControlProvider) -> None:
        self._cloud = cloud

    async def _client(self, region: str | None) -> Any:
        return await self._cloud.for_region(region).client("cloudformation")

    async def start(
        self,
        name: str,
        resources: list[dict[str, Any]],
        *,
        deletion_policy: str,
        update_replace_policy: str,
        region: str | None = None,
    ) -> str:
        client = await self._client(region)
        try:
            answer = await call_with_retry(
                client.create_generated_template,
                GeneratedTemplateName=name,
                Resources=resources,
                TemplateConfiguration={
                    "DeletionPolicy": deletion_policy,
                    "UpdateReplacePolicy": update_replace_policy,
                },
            )
        except AWS_ERRORS as exc:
            raise translate(
                exc, what=f"template {name}", iam_action="cloudformation:CreateGeneratedTemplate"
            ) from exc
        return str(answer["GeneratedTemplateId"])

    async def status(self, template_id: str) -> dict[str, Any]:
        client = await self._client(_region_of(template_id))
        try:
            answer = await call_with_retry(
                client.describe_generated_template, GeneratedTemplateName=template_id
            )
        except AWS_ERRORS as exc:
            raise translate(
                exc, what=template_id, iam_action="cloudformation:DescribeGeneratedTemplate"
            ) from exc
        return {"status": answer.get("Status"), "resources": answer.get("Resources", [])}

    async def template(self, template_id: str, output_format: str) -> str:
        client = await self._client(_region_of(template_id))
        try:
            answer = await call_with_retry(
                client.get_generated_template,
                GeneratedTemplateName=template_id,
                Format=output_format,
            )
        except AWS_ERRORS as exc:
            raise translate(
                exc, what=template_id, iam_action="cloudformation:GetGeneratedTemplate"
            ) from exc
        return str(answer["TemplateBody"])


def _region_of(arn: str) -> str | None:
    """arn:aws:cloudformation:<region>:<account>:generatedtemplate/<id> -> region."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None
