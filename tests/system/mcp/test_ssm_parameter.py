"""An SSM parameter with tags goes through the whole workflow (its schema's Tags are
patternProperties keyed by \\p{L} patterns, which Python's re cannot compile)."""

from __future__ import annotations

import boto3
from ccstate.sandbox import Sandbox

from tests.system.mcp.harness import McpSession, aws_kwargs

SSM = "AWS::SSM::Parameter"


def test_an_ssm_parameter_with_tags_is_created(server: McpSession, sandbox: Sandbox) -> None:
    properties = {
        "Name": "/ccstate/test/feature-flag",
        "Type": "String",
        "Value": "on",
        "Tags": {"team": "platform"},
    }
    tokens = server.prepare(
        "Feature flag for the new checkout", resource_type=SSM, properties=properties
    )

    created = server.ok("create_resource", resource_type=SSM, **tokens)

    assert created.get("identifier") == "/ccstate/test/feature-flag", created
    ssm = boto3.client("ssm", **aws_kwargs(sandbox.env()))
    assert ssm.get_parameter(Name="/ccstate/test/feature-flag")["Parameter"]["Value"] == "on"
    tags = ssm.list_tags_for_resource(
        ResourceType="Parameter", ResourceId="/ccstate/test/feature-flag"
    )["TagList"]
    assert {"Key": "team", "Value": "platform"} in tags
