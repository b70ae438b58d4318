"""The demo's rollback and graph steps.

``rollback_step``: the bucket's tags are changed, then rolled back to the create's token: the
plan (per property) first, then the rollback itself, through the token workflow, recorded as
'rollback' with the token it went back to.

``graph_step``: three related resources (a KMS key, a bucket encrypted with it, a role whose
policy reads the bucket), their dependency graph, and what deleting the key would break.

Both take the demo's ``DemoSession`` (an MCP client session on ``ccstate serve --sandbox``)
and ``DemoPrinter``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ccstate.mcp_demo calls this module: no import cycle at run time
    from ccstate.demo_output import DemoPrinter
    from ccstate.mcp_demo import DemoSession

S3 = "AWS::S3::Bucket"
KEY = "AWS::KMS::Key"
ROLE = "AWS::IAM::Role"
DATA_BUCKET = "demo-encrypted-data"
READER_ROLE = "demo-data-reader"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


async def rollback_step(
    session: DemoSession, printer: DemoPrinter, credentials: str, bucket: str, token: str
) -> None:
    """Change the bucket's tags, then roll back to what the create (``token``) left."""
    printer.step("A change someone regrets: the bucket's team tag is changed.")
    patch = [{"op": "replace", "path": "/Tags", "value": [{"Key": "team", "Value": "data"}]}]
    tokens = await session.prepare(
        credentials, "Hand the bucket to the data team", resource_type=S3, identifier=bucket,
        patch_document=patch,
    )  # fmt: skip
    await session.call("update_resource", resource_type=S3, identifier=bucket, **tokens)

    printer.step("Roll back to the create's token: first the plan, computed from AWS.")
    plan = await session.call(
        "rollback_resource", identifier=bucket, execution_token=token, plan_only=True,
        show=["summary", "action", "plan_digest"],
    )  # fmt: skip
    for prop in plan.get("properties", []):
        printer.say(f"  {prop['property']:<28} {prop['action']:<10} {prop['reason']}")

    printer.step("The user confirms; the rollback runs: explain -> scan -> update.")
    done = await session.call(
        "rollback_resource", identifier=bucket, execution_token=token,
        plan_digest=plan.get("plan_digest", ""), user_intent="The hand-over was cancelled",
        show=["status", "rolled_back_to", "execution_token"],
    )  # fmt: skip
    history = await session.call("show_resource_history", identifier=bucket)
    last = (history.get("entries") or [{}])[-1]
    printer.say(
        f"serial {last.get('serial')}: {last.get('operation')} {last.get('outcome')}, "
        f"rolled_back_to {str(last.get('rolled_back_to'))[:17]}... "
        f"(undo it with rollback_resource(execution_token={str(done.get('execution_token'))[:17]}"
        "..., to='before'))"
    )


async def graph_step(session: DemoSession, printer: DemoPrinter, credentials: str) -> None:
    """Three related resources, their graph, and the impact of deleting the first."""
    printer.step("Three related resources: a KMS key, a bucket encrypted with it, a reader role.")
    key = await _create(session, credentials, KEY, {"Description": "demo data key"})
    key_arn = (key.get("properties") or {}).get("Arn", "")
    encryption = {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]}  # fmt: skip
    await _create(
        session, credentials, S3, {"BucketName": DATA_BUCKET, "BucketEncryption": encryption}
    )
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
              "Resource": f"arn:aws:s3:::{DATA_BUCKET}/*"}]}  # fmt: skip
    await _create(
        session, credentials, ROLE,
        {"RoleName": READER_ROLE, "AssumeRolePolicyDocument": TRUST,
         "Policies": [{"PolicyName": "read-data", "PolicyDocument": policy}]},
    )  # fmt: skip

    printer.step("show_dependency_graph: found from the values, no declarations needed.")
    graph = await session.call("show_dependency_graph", identifier=key["identifier"])
    for edge in (graph.get("graph") or {}).get("edges", []):
        printer.say(f"  {edge['dependent']} -> {edge['dependency']}  (via {edge['via']})")
    printer.say("Mermaid, for a Markdown viewer:")
    printer.block(str(graph.get("mermaid", "")))

    printer.step("analyze_change_impact: what would deleting the key break?")
    impact = await session.call(
        "analyze_change_impact", resource_type=KEY, operation="delete",
        identifier=key["identifier"], show=["verdict", "risk", "reasons"],
    )  # fmt: skip
    for d in impact.get("dependents", []):
        printer.say(f"  depth {d['depth']}: {d['identifier']} - {d['reason']}")


async def _create(
    session: DemoSession, credentials: str, resource_type: str, properties: dict[str, Any]
) -> dict[str, Any]:
    tokens = await session.prepare(
        credentials, "Demo: related resources", quiet=True, resource_type=resource_type,
        properties=properties,
    )  # fmt: skip
    created = await session.call(
        "create_resource", resource_type=resource_type, show=["identifier"], **tokens
    )
    return json.loads(json.dumps(created))
