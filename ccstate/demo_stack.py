"""The demo's stack step: a KMS key, a bucket encrypted with it and a role that reads the
bucket, deployed together in dependency order with one call; updated (a queue added, the bucket
tagged) and rolled back to before the update; then destroyed in reverse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ccstate.mcp_demo calls this module: no import cycle at run time
    from ccstate.demo_output import DemoPrinter
    from ccstate.mcp_demo import DemoSession

BUCKET_NAME = "ccstate-demo-stack-data"
READS_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": {"Fn::GetAtt": ["Data", "Arn"]},
        }
    ],
}
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
RESOURCES: dict[str, Any] = {
    "DataKey": {"Type": "AWS::KMS::Key", "Properties": {"Description": "demo stack data key"}},
    "Data": {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": BUCKET_NAME,
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
                        }
                    }
                ]
            },
        },
    },
    "Reader": {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": "ccstate-demo-stack-reader",
            "AssumeRolePolicyDocument": TRUST,
            "Policies": [{"PolicyName": "read-data", "PolicyDocument": READS_BUCKET}],
        },
    },
}

UPDATED: dict[str, Any] = {
    **RESOURCES,
    "Data": {
        **RESOURCES["Data"],
        "Properties": {
            **RESOURCES["Data"]["Properties"],
            "Tags": [{"Key": "team", "Value": "data"}],
        },
    },
    "Inbox": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "ccstate-demo-stack-inbox"}},
}


async def stack_step(session: DemoSession, printer: DemoPrinter) -> None:
    printer.step("A stack: key -> bucket encrypted with it -> role that reads it, one plan token.")
    stack = {
        "stack_name": "demo-data",
        "resources": RESOURCES,
        "user_intent": "Demo: encrypted data bucket and a reader role",
    }
    plan = await session.call("create_stack", preview=True, **stack)
    printer.say(
        f"plan: {len(plan['actions'])} resources explained; scan {plan['security_scan']['status']}"
    )
    created = await session.call("create_stack", plan_token=plan["plan_token"], **stack)
    seen = _events(printer, created)
    printer.step("Update the stack: tag the bucket in place, add a queue; then roll it back.")
    updated = await session.call(
        "update_stack",
        stack_name="demo-data",
        resources=UPDATED,
        user_intent="Demo: the data team's tag and an inbox queue",
    )
    seen = _events(printer, updated, seen)
    back = await session.call(
        "rollback_stack", stack_name="demo-data", user_intent="Demo: the inbox was not wanted"
    )
    seen = _events(printer, back, seen)
    printer.step("Destroy the stack: dependents first, the key last.")
    destroyed = await session.call("destroy_stack", stack_name="demo-data", confirmed=True)
    _events(printer, destroyed, seen)


def _events(printer: DemoPrinter, result: dict[str, Any], seen: int = 0) -> int:
    """Say the resources' outcomes among the stack's events after the first ``seen`` (a
    stack's events accumulate over its operations); return how many there are now."""
    events = result.get("events", [])
    for event in events[seen:]:
        own = event["logical_id"] == result.get("stack_name")  # said on the last line
        if not own and event["status"].endswith(("_COMPLETE", "_FAILED")):
            where = f" {event['identifier']}" if event["identifier"] else ""
            printer.say(f"{event['logical_id']}{where}: {event['status']}")
    reason = f" ({result['reason']})" if result.get("reason") else ""
    printer.say(f"stack {result.get('stack_name')}: {result.get('status')}{reason}")
    return len(events)
