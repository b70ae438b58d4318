"""Messages that tell a person to forget a resource name a command that exists."""

from __future__ import annotations

import re
import shlex

import pytest
from ccstate.service.errors import InvalidInput
from ccstate.service.state.model import ResourceState
from ccstate.service.state.store import ensure_same_type

from ccstate.cli import build_parser
from ccstate.wording import CLI_WORDS


def named_command(text: str) -> list[str]:
    [command] = re.findall(r"`(ccstate [^`]+)`", text)
    return shlex.split(command.replace("...", "why").replace("ID", "some-id"))[1:]


def test_the_type_clash_message_names_state_rm_and_it_parses() -> None:
    existing = ResourceState(resource_type="AWS::S3::Bucket", identifier="logs")
    with pytest.raises(InvalidInput) as caught:
        ensure_same_type(existing, "AWS::SQS::Queue")
    argv = named_command(caught.value.next_step_in(CLI_WORDS))
    assert argv[:3] == ["state", "rm", "logs"]
    assert build_parser(argv).parse_args(argv).handler.__name__ == "forget"


def test_import_and_state_rm_are_commands() -> None:
    parser = build_parser(["import"])
    args = parser.parse_args(["import", "AWS::S3::Bucket", "b", "--reason", "r"])
    assert (args.resource_type, args.identifier, args.reason) == ("AWS::S3::Bucket", "b", "r")
