"""How much a drifted property matters: one ordered table of rules, and the server defaults.

A rule names a resource type (a glob, ``*`` for any) and a property path, as a glob over JSON
pointer segments (``/PolicyDocument``, ``**/KmsKeyId``, ``/Tags/*/Value``) or as a regular
expression (``regex``), and gives a severity: critical, high, medium, low, or ignore. A glob rule
covers the path it names and everything below it. The first matching rule wins; rules a user adds
are tried before the built-in ones, so they can raise, lower or silence any path.

A property that the stored state never had but the cloud now reports is a server default and not
drift, unless its rule says ``report_added`` (every critical rule does, and so do tags).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import jsonpointer
from ccstate.service.errors import InvalidInput

SEVERITIES = ("critical", "high", "medium", "low")
IGNORE = "ignore"
DEFAULT_SEVERITY = "medium"
TAG_SEVERITY = "low"
SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES), start=1)}
# Verdicts remembered per table: a scan judges the same few paths of the same types thousands of
# times, and walking the globs costs more than the rest of a comparison. Bounded, since paths
# with list indexes or free-form keys are unbounded.
MAX_REMEMBERED_VERDICTS = 4096


def split_pointer(pointer: str) -> list[str]:
    """'/A/b~1c/0' -> ['A', 'b/c', '0'] (RFC 6901 unescaping)."""
    if not pointer:
        return []
    return [jsonpointer.unescape(part) for part in pointer.split("/")[1:]]


def join_pointer(segments: Iterable[str]) -> str:
    return "".join("/" + jsonpointer.escape(str(s)) for s in segments)


def glob_matches_prefix(pattern: Sequence[str], segments: Sequence[str]) -> bool:
    """True when ``pattern`` matches ``segments`` or one of its ancestors.

    Pattern segments are fnmatch globs over one path segment; ``**`` spans any number of them.
    """
    if not pattern:
        return True
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(glob_matches_prefix(rest, segments[i:]) for i in range(len(segments) + 1))
    if not segments or not fnmatchcase(segments[0], head):
        return False
    return glob_matches_prefix(rest, segments[1:])


@dataclass(frozen=True)
class SeverityRule:
    severity: str
    resource_type: str = "*"
    path: tuple[str, ...] | None = None  # glob segments
    regex: re.Pattern[str] | None = None
    report_added: bool | None = None  # None: only critical rules report added properties
    description: str = ""

    def matches(self, resource_type: str, pointer: str, segments: Sequence[str]) -> bool:
        if not fnmatchcase(resource_type, self.resource_type):
            return False
        if self.regex is not None:
            return self.regex.search(pointer) is not None
        return self.path is not None and glob_matches_prefix(self.path, segments)

    def reports_added(self, *, is_tag: bool) -> bool:
        if self.report_added is not None:
            return self.report_added
        return self.severity == "critical" or is_tag

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeverityRule:
        """From ``{"resource_type": "AWS::S3::*", "path": "/Foo", "severity": "high"}``."""
        if not isinstance(raw, Mapping):
            raise InvalidInput(
                f"A drift rule must be an object, not {type(raw).__name__}: {raw!r}.",
                next_step='Write rules like {"path": "/Foo", "severity": "high"}.',
            )
        unknown = set(raw) - {
            "resource_type",
            "path",
            "regex",
            "severity",
            "report_added",
            "description",
        }
        severity = raw.get("severity")
        if unknown or severity not in (*SEVERITIES, IGNORE):
            raise InvalidInput(
                f"Drift rule {dict(raw)!r} is invalid: "
                + (f"unknown keys {sorted(unknown)}" if unknown else f"severity {severity!r}"),
                next_step="Use the keys resource_type, path or regex, severity (critical, high, "
                "medium, low, ignore), report_added, description.",
            )
        path, regex = raw.get("path"), raw.get("regex")
        if (path is None) == (regex is None):
            raise InvalidInput(
                f"Drift rule {dict(raw)!r} needs exactly one of 'path' and 'regex'.",
                next_step='Add e.g. "path": "/BucketEncryption".',
            )
        return cls(
            severity=str(severity),
            resource_type=str(raw.get("resource_type", "*")),
            path=_compile_glob(path) if path is not None else None,
            regex=_compile_regex(regex) if regex is not None else None,
            report_added=_optional_bool(raw.get("report_added"), raw),
            description=str(raw.get("description", "")),
        )


def _compile_glob(path: Any) -> tuple[str, ...]:
    if not isinstance(path, str) or not (path.startswith("/") or path.startswith("**")):
        raise InvalidInput(
            f"Drift rule path {path!r} is not a property path.",
            next_step="Start it with '/', e.g. /PublicAccessBlockConfiguration or **/KmsKeyId.",
        )
    return tuple(split_pointer(path if path.startswith("/") else "/" + path))


def _compile_regex(regex: Any) -> re.Pattern[str]:
    try:
        return re.compile(str(regex))
    except re.error as exc:
        raise InvalidInput(
            f"Drift rule regex {regex!r} does not compile: {exc}.",
            next_step="Fix the regular expression (Python syntax).",
        ) from exc


def _optional_bool(value: Any, raw: Mapping[str, Any]) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(
        f"Drift rule {dict(raw)!r}: report_added must be true or false.",
        next_step="Remove report_added or set it to a boolean.",
    )


@dataclass(frozen=True)
class Verdict:
    severity: str  # one of SEVERITIES or IGNORE
    reports_added: bool


class SeverityRules:
    """An ordered rule table; the first matching rule decides."""

    def __init__(self, rules: Iterable[SeverityRule]) -> None:
        self.rules: tuple[SeverityRule, ...] = tuple(rules)
        self._by_type: dict[str, SeverityRules] = {}
        self._verdicts: dict[tuple[str, str, bool], Verdict] = {}

    def with_extra(self, extra: Iterable[Mapping[str, Any] | SeverityRule]) -> SeverityRules:
        """A table that tries ``extra`` (a user's rules) first, then these."""
        added = [r if isinstance(r, SeverityRule) else SeverityRule.from_dict(r) for r in extra]
        return SeverityRules([*added, *self.rules])

    def for_type(self, resource_type: str) -> SeverityRules:
        """Only the rules that can apply to ``resource_type`` (faster to judge many paths)."""
        found = self._by_type.get(resource_type)
        if found is None:
            found = SeverityRules(
                r for r in self.rules if fnmatchcase(resource_type, r.resource_type)
            )
            self._by_type[resource_type] = found
        return found

    def judge(self, resource_type: str, pointer: str, *, is_tag: bool = False) -> Verdict:
        key = (resource_type, pointer, is_tag)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._first_match(resource_type, pointer, is_tag=is_tag)
            if len(self._verdicts) < MAX_REMEMBERED_VERDICTS:
                self._verdicts[key] = verdict
        return verdict

    def _first_match(self, resource_type: str, pointer: str, *, is_tag: bool) -> Verdict:
        segments = split_pointer(pointer)
        for rule in self.rules:
            if rule.matches(resource_type, pointer, segments):
                return Verdict(rule.severity, rule.reports_added(is_tag=is_tag))
        if is_tag:
            return Verdict(TAG_SEVERITY, True)
        return Verdict(DEFAULT_SEVERITY, False)


def _rules(severity: str, resource_type: str, *paths: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"severity": severity, "resource_type": resource_type, "path": p, **extra} for p in paths
    ]


# Ordered most severe first, specific types before '*'. Documented in docs/drift.md.
DEFAULT_RULE_DICTS: list[dict[str, Any]] = [
    # --- critical: who can reach or read the resource, and how it is encrypted
    *_rules(
        "critical",
        "AWS::S3::Bucket",
        "/PublicAccessBlockConfiguration",
        "/BucketEncryption",
        "/AccessControl",
        "/OwnershipControls",
        "/WebsiteConfiguration",
    ),
    *_rules("critical", "AWS::EC2::SecurityGroup", "/SecurityGroupIngress", "/SecurityGroupEgress"),
    *_rules("critical", "AWS::EC2::SecurityGroupIngress", "/**"),
    *_rules("critical", "AWS::EC2::SecurityGroupEgress", "/**"),
    *_rules("critical", "AWS::EC2::NetworkAclEntry", "/**"),
    *_rules(
        "critical",
        "AWS::IAM::*",
        "/AssumeRolePolicyDocument",
        "/Policies",
        "/ManagedPolicyArns",
        "/PermissionsBoundary",
        "/PolicyDocument",
        "/Groups",
        "/Users",
        "/Roles",
    ),
    *_rules("critical", "AWS::KMS::Key", "/KeyPolicy", "/Enabled", "/PendingWindowInDays"),
    *_rules("critical", "AWS::Lambda::Permission", "/**"),
    *_rules("critical", "AWS::Lambda::Url", "/AuthType", "/Cors"),
    *_rules("critical", "AWS::SQS::Queue", "/SqsManagedSseEnabled", "/KmsMasterKeyId"),
    *_rules(
        "critical",
        "*",
        "/PolicyDocument",
        "/Policy",
        "/KeyPolicy",
        "/ResourcePolicy",
        "/AccessPolicies",
        "**/PubliclyAccessible",
        "**/KmsKeyId",
        "**/KmsKeyArn",
        "**/KMSMasterKeyID",
        "**/KmsMasterKeyId",
        "**/StorageEncrypted",
        "**/SSESpecification",
        "**/EncryptionConfiguration",
        "**/Encrypted",
        "**/CidrIp",
        "**/CidrIpv6",
    ),
    # --- high: recovery, audit and availability guarantees
    *_rules(
        "high",
        "AWS::S3::Bucket",
        "/VersioningConfiguration",
        "/LoggingConfiguration",
        "/ObjectLockConfiguration",
        "/ObjectLockEnabled",
        "/ReplicationConfiguration",
    ),
    *_rules("high", "AWS::KMS::Key", "/EnableKeyRotation", "/KeyUsage"),
    *_rules("high", "AWS::SQS::Queue", "/RedrivePolicy", "/RedriveAllowPolicy"),
    *_rules("high", "AWS::Lambda::Function", "/Role", "/VpcConfig"),
    *_rules(
        "high",
        "*",
        "**/DeletionProtection",
        "**/DeletionProtectionEnabled",
        "**/BackupRetentionPeriod",
        "**/PointInTimeRecoverySpecification",
        "**/LoggingConfiguration",
        "**/MultiAZ",
        "/Role",
        "/RoleArn",
        "/ExecutionRoleArn",
    ),
    # --- low: labels
    *_rules("low", "*", "/Tags", "/Description"),
]
DEFAULT_RULES = SeverityRules(SeverityRule.from_dict(r) for r in DEFAULT_RULE_DICTS)


def rules_with(extra: Iterable[Mapping[str, Any]] | None) -> SeverityRules:
    """The default table with a user's rules (e.g. loaded from the ``drift_rules`` file) first."""
    return DEFAULT_RULES.with_extra(extra or [])


@dataclass(frozen=True)
class ServerDefault:
    """A value the cloud sets when the user gave none; seeing it where state had nothing is fine."""

    resource_type: str
    path: str
    value: Any


# Values AWS fills in on creation. An added property equal to one of these (extra keys in the
# actual value allowed) is not drift. Vacuous values (false, empty, null) never count anyway.
KNOWN_DEFAULTS: tuple[ServerDefault, ...] = (
    ServerDefault(
        "AWS::EC2::SecurityGroup",
        "/SecurityGroupEgress",
        [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}],
    ),
    ServerDefault(
        "AWS::S3::Bucket",
        "/PublicAccessBlockConfiguration",
        {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    ),
    ServerDefault(
        "AWS::S3::Bucket",
        "/BucketEncryption",
        {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
    ),
    ServerDefault(
        "AWS::S3::Bucket",
        "/OwnershipControls",
        {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    ),
    ServerDefault("AWS::SQS::Queue", "/SqsManagedSseEnabled", True),
)


def known_defaults(resource_type: str, pointer: str) -> list[Any]:
    return [
        d.value
        for d in KNOWN_DEFAULTS
        if d.path == pointer and fnmatchcase(resource_type, d.resource_type)
    ]
