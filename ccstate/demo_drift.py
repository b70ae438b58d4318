"""The demo's drift step: a change made behind ccstate's back is detected, shown with its
severity, and fixed through the token workflow.

``await drift_step(session, printer, bucket)`` with the demo's ``DemoSession`` (an MCP client
session on ``ccstate serve --sandbox``) and ``DemoPrinter``. The out-of-band change goes
straight to the sandbox's S3 API with boto3, as a colleague with the AWS console or CLI would
make it; the sandbox endpoint is the one the server reports in ``check_environment_variables``.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:  # ccstate.mcp_demo calls this module: no import cycle at run time
    from ccstate.demo_output import DemoPrinter
    from ccstate.mcp_demo import DemoSession

SHADOW_TAGS = {"team": "shadow-it", "cost-center": "unknown"}
# Someone turns off one of the four public-access guards: a critical change.
LOOSER_PUBLIC_ACCESS = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": False,
    "RestrictPublicBuckets": True,
}


async def drift_step(
    session: DemoSession, printer: DemoPrinter, bucket: str, endpoint_url: str | None = None
) -> None:
    """Change ``bucket`` out of band, detect it, fix it, show the restored state."""
    endpoint = endpoint_url or await _sandbox_endpoint(session)
    printer.step("Someone changes the bucket behind ccstate's back, with the S3 API.")
    printer.command(
        ["aws", "s3api", "put-bucket-tagging", "--bucket", bucket, "--tagging", _tag_set_arg()]
    )
    printer.command(
        [
            "aws",
            "s3api",
            "put-public-access-block",
            "--bucket",
            bucket,
            "--public-access-block-configuration",
            "BlockPublicPolicy=false,BlockPublicAcls=true,...",
        ]
    )
    await asyncio.to_thread(_change_out_of_band, endpoint, bucket)

    printer.step("detect_drift compares every managed resource with AWS and records the result.")
    found = await session.call("detect_drift", show=["message"])
    for resource in found.get("resources", []):
        _print_resource(printer, resource)

    printer.step("Fix it: the same token chain as a human change, recorded as 'remediate'.")
    fixed = await session.call(
        "detect_drift",
        identifier=bucket,
        auto_fix=True,
        user_intent="Undo the unapproved change to the log bucket",
        show=["message"],
    )
    for fix in fixed.get("fixes", []):
        printer.say(f"{fix['identifier']}: {fix['status']} at serial {fix.get('state_serial')}")
        printer.say("Patch applied through update_resource:")
        printer.block(json.dumps(fix.get("patch"), indent=2))
        if fix.get("explanation"):
            printer.say("The explanation recorded with it:")
            printer.block(fix["explanation"])

    printer.step("The restored bucket, read back from AWS, and its history.")
    live = await asyncio.to_thread(_read_back, endpoint, bucket)
    printer.block(json.dumps(live, indent=2))
    history = await session.call("show_resource_history", identifier=bucket)
    for entry in history.get("entries", [])[-3:]:
        printer.say(
            f"serial {entry['serial']}: {entry['operation']} {entry['outcome']} by "
            f"{entry['user']} - {_why(entry)!r}"
        )


def _why(entry: dict[str, Any]) -> str:
    """The intent, else the explanation (a drift check records no intent of its own)."""
    return entry.get("user_intent") or entry.get("explanation") or "(no reason recorded)"


async def _sandbox_endpoint(session: DemoSession) -> str:
    env = await session.client.call_tool("check_environment_variables", {})
    data: dict[str, Any] = env.structured_content or {}
    endpoint = (data.get("environment_variables") or {}).get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise RuntimeError("the server does not report a sandbox endpoint (AWS_ENDPOINT_URL)")
    return str(endpoint)


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the sandbox accepts any credentials
    )


def _change_out_of_band(endpoint: str, bucket: str) -> None:
    s3 = _s3(endpoint)
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    tags.update(SHADOW_TAGS)
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
    )
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=LOOSER_PUBLIC_ACCESS)


def _read_back(endpoint: str, bucket: str) -> dict[str, Any]:
    s3 = _s3(endpoint)
    tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except s3.exceptions.ClientError:
        block = None
    return {"Tags": {t["Key"]: t["Value"] for t in tags}, "PublicAccessBlockConfiguration": block}


def _print_resource(printer: DemoPrinter, resource: dict[str, Any]) -> None:
    printer.say(
        f"{resource['status']} {resource['identifier']} ({resource['resource_type']}), "
        f"highest severity: {resource.get('max_severity')}"
    )
    for d in resource.get("differences", []):
        printer.say(
            f"  [{d['Severity']:>8}] {d['DifferenceType']:<9} {d['PropertyPath']}: "
            f"{json.dumps(d['ExpectedValue'])} -> {json.dumps(d['ActualValue'])}"
        )


def _tag_set_arg() -> str:
    tags = ",".join(f"{{Key={k},Value={v}}}" for k, v in SHADOW_TAGS.items())
    return f"TagSet=[...,{tags}]"
