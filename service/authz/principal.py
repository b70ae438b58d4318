"""Who a request acts for, established by the face that received it.

A ``Principal`` is made per request (the MCP tool call, the CLI command) and passed into every
use case; no long-lived object holds one. ``established`` says how the person was identified:

- ``os-user``: the login of the process (``getpass``), on stdio and in the CLI;
- ``declared``: a name the operator set ($CCSTATE_USER), trusted as given;
- ``aws-sts``: only the AWS caller ARN is known (STS GetCallerIdentity) and names the person;
- ``authenticated``: the HTTP server verified the caller (bearer token, identity provider).

``role`` is the team server's role of an authenticated person (``authz.policy.ROLES``); None
for the local person, whose authority is their own AWS and backend credentials.

Commits record the older pydantic ``state.model.Principal`` (docs/state-format.md);
``to_record`` and ``from_record`` map between the two, and execution tokens bind
``for_token()`` so a token serves only the principal it was issued to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ccstate.service.authz.tokens import TokenPrincipal
from ccstate.service.state.model import Principal as RecordedPrincipal

Established = Literal["os-user", "declared", "aws-sts", "authenticated"]
ESTABLISHED: tuple[Established, ...] = ("os-user", "declared", "aws-sts", "authenticated")
UNKNOWN_ARN = "unknown"


@dataclass(frozen=True)
class Principal:
    person: str
    established: Established
    aws_arn: str | None = None
    host: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        if self.established not in ESTABLISHED:
            raise ValueError(f"unknown way to establish a principal: {self.established!r}")
        if not self.person:
            raise ValueError("a principal needs a person")

    def with_arn(self, arn: str | None) -> Principal:
        return replace(self, aws_arn=arn)

    def describe(self) -> str:
        """As lock holders and messages show it; the same text as the recorded principal's."""
        return self.to_record().describe()

    def for_token(self) -> TokenPrincipal:
        """What an execution token is bound to: the AWS caller and the person."""
        return TokenPrincipal(arn=self.aws_arn or UNKNOWN_ARN, user=self.person)

    def to_record(self) -> RecordedPrincipal:
        """The principal as commits store it: ``user`` for a local or declared person,
        ``authenticated_user`` for one the server verified; ``aws_session`` is the ARN."""
        if self.established == "authenticated":
            return RecordedPrincipal(
                authenticated_user=self.person, aws_session=self.aws_arn, host=self.host
            )
        return RecordedPrincipal(user=self.person, aws_session=self.aws_arn, host=self.host)

    @classmethod
    def from_record(cls, recorded: RecordedPrincipal) -> Principal:
        if recorded.authenticated_user:
            return cls(
                recorded.authenticated_user, "authenticated", recorded.aws_session, recorded.host
            )
        if recorded.user:
            return cls(recorded.user, "os-user", recorded.aws_session, recorded.host)
        return cls(
            recorded.aws_session or UNKNOWN_ARN, "aws-sts", recorded.aws_session, recorded.host
        )

    @classmethod
    def from_caller_arn(cls, arn: str, host: str | None = None) -> Principal:
        """A principal known only by its AWS caller ARN (``.../user/alice`` -> ``alice``)."""
        return cls(arn.rsplit("/", 1)[-1] or arn, "aws-sts", arn, host)
