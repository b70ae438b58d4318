"""Execution tokens: the chain, its bindings, single use across instances, expiry, storage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.authz.tokens import TokenPrincipal, TokenService, payload_digest, token_hash
from ccstate.service.changes.scanning import (
    ScanResult,
    accept_findings,
    completed_result,
    skipped_result,
)
from ccstate.service.errors import InvalidInput, TokenError

ALICE = TokenPrincipal(arn="arn:aws:iam::123456789012:user/alice")
BOB = TokenPrincipal(arn="arn:aws:iam::123456789012:user/bob")
BUCKET = {"BucketName": "demo", "Tags": [{"Key": "env", "Value": "dev"}]}
PASSED = completed_result(12, [], scanner="checkov")
FAILED = completed_result(
    10,
    [
        {
            "id": "CKV_AWS_53",
            "name": "Ensure S3 bucket has block public ACLS",
            "severity": None,
            "path": "/PublicAccessBlockConfiguration",
        }
    ],
    scanner="checkov",
)


class FakeClock:
    def __init__(self) -> None:
        self.at = datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "state")


@pytest.fixture
def tokens(store: LocalObjectStore, clock: FakeClock) -> TokenService:
    return TokenService(store, "default", clock=clock, ttl_seconds=900)


async def chain_to(
    tokens: TokenService,
    *,
    operation: str = "create",
    identifier: str | None = None,
    payload: object = BUCKET,
    scan: ScanResult = PASSED,
    principal: TokenPrincipal = ALICE,
    credentials: str | None = None,
) -> str:
    creds = credentials or (await tokens.issue("credentials", principal=principal)).token
    code = await tokens.issue(
        "generated_code",
        principal=principal,
        parent=creds,
        operation=operation,
        resource_type="AWS::S3::Bucket",
        identifier=identifier,
        payload=payload,
    )
    explained = await tokens.issue(
        "explained",
        principal=principal,
        parent=code.token,
        explanation="Creates bucket demo, private, tagged env=dev.",
        user_intent="a bucket for the demo",
    )
    scanned = await tokens.issue("scanned", principal=principal, parent=explained.token, scan=scan)
    return scanned.token


def check_of(exc: pytest.ExceptionInfo[TokenError]) -> str:
    return str(exc.value.details["check"])


async def test_full_chain_authorizes_exactly_one_execution(tokens: TokenService) -> None:
    token = await chain_to(tokens)
    record = await tokens.consume(
        token,
        principal=ALICE,
        operation="create",
        resource_type="AWS::S3::Bucket",
        payload_digest=payload_digest(BUCKET),
    )
    assert record.payload == BUCKET
    assert record.explanation == "Creates bucket demo, private, tagged env=dev."
    assert record.user_intent == "a bucket for the demo"
    assert record.checkov_results()["status"] == "PASSED"
    with pytest.raises(TokenError) as replay:
        await tokens.consume(token, principal=ALICE)
    assert check_of(replay) == "consumed"
    assert "single use" in replay.value.message


async def test_replay_on_another_server_instance_is_refused(
    store: LocalObjectStore, tmp_path: Path, clock: FakeClock
) -> None:
    first = TokenService(store, "default", clock=clock)
    second = TokenService(LocalObjectStore(tmp_path / "state"), "default", clock=clock)
    token = await chain_to(first)
    await second.consume(token, principal=ALICE)
    with pytest.raises(TokenError) as replay:
        await first.consume(token, principal=ALICE)
    assert check_of(replay) == "consumed"


async def test_concurrent_consumes_let_exactly_one_through(tokens: TokenService) -> None:
    token = await chain_to(tokens)
    outcomes = await asyncio.gather(
        *(tokens.consume(token, principal=ALICE) for _ in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(
        isinstance(o, TokenError) and o.details["check"] == "consumed"
        for o in outcomes
        if isinstance(o, BaseException)
    )


async def test_failed_scan_authorizes_nothing(tokens: TokenService) -> None:
    with pytest.raises(TokenError) as refused:
        await chain_to(tokens, scan=FAILED)
    assert check_of(refused) == "scan_failed"
    assert "CKV_AWS_53" in refused.value.message
    assert refused.value.details["failed_checks"][0]["id"] == "CKV_AWS_53"


async def test_unavailable_scanner_authorizes_nothing_but_disabled_scanning_does(
    tokens: TokenService,
) -> None:
    unavailable = ScanResult(status="UNAVAILABLE", message="pip install 'ccstate[scan]'")
    with pytest.raises(TokenError) as refused:
        await chain_to(tokens, scan=unavailable)
    assert "ccstate[scan]" in refused.value.next_step
    token = await chain_to(tokens, scan=skipped_result())
    record = await tokens.consume(token, principal=ALICE)
    assert "not scanned" in record.checkov_results()["summary"]


async def test_update_applies_only_the_patch_that_was_explained(tokens: TokenService) -> None:
    patch = [{"op": "replace", "path": "/Tags/0/Value", "value": "prod"}]
    token = await chain_to(tokens, operation="update", identifier="demo", payload=patch)
    other = [{"op": "remove", "path": "/PublicAccessBlockConfiguration"}]
    with pytest.raises(TokenError) as refused:
        await tokens.consume(token, operation="update", payload_digest=payload_digest(other))
    assert check_of(refused) == "payload_mismatch"
    record = await tokens.consume(token, operation="update", payload_digest=payload_digest(patch))
    assert record.payload == patch


async def test_delete_refuses_another_identifier_than_explained(tokens: TokenService) -> None:
    token = await chain_to(tokens, operation="delete", identifier="demo", payload=None)
    with pytest.raises(TokenError) as refused:
        await tokens.consume(token, operation="delete", identifier="production-data")
    assert check_of(refused) == "wrong_resource"
    assert "'demo'" in refused.value.message
    with pytest.raises(TokenError) as wrong_op:
        await tokens.consume(token, operation="update", identifier="demo")
    assert check_of(wrong_op) == "wrong_operation"
    await tokens.consume(token, operation="delete", identifier="demo")


async def test_other_principal_cannot_use_a_token(tokens: TokenService) -> None:
    token = await chain_to(tokens)
    with pytest.raises(TokenError) as refused:
        await tokens.consume(token, principal=BOB)
    assert check_of(refused) == "wrong_principal"
    shared_user = TokenPrincipal(arn=ALICE.arn, user="mallory")
    with pytest.raises(TokenError) as same_arn:
        await tokens.consume(token, principal=shared_user)
    assert check_of(same_arn) == "wrong_principal"


async def test_expired_token_is_refused_with_what_to_do(
    tokens: TokenService, clock: FakeClock
) -> None:
    token = await chain_to(tokens)
    clock.advance(901)
    with pytest.raises(TokenError) as refused:
        await tokens.consume(token, principal=ALICE)
    assert check_of(refused) == "expired"
    # The domain names no tool; the MCP face words the next step with its tool names.
    assert "run_checkov" in refused.value.next_step_in(MCP_WORDS)
    assert "run_checkov" not in refused.value.next_step


async def test_skipping_a_step_is_refused(tokens: TokenService) -> None:
    creds = await tokens.issue("credentials", principal=ALICE)
    code = await tokens.issue(
        "generated_code",
        principal=ALICE,
        parent=creds.token,
        operation="create",
        resource_type="AWS::S3::Bucket",
        payload=BUCKET,
    )
    with pytest.raises(TokenError) as unexplained:
        await tokens.issue("scanned", principal=ALICE, parent=code.token, scan=PASSED)
    assert check_of(unexplained) == "wrong_chain"
    with pytest.raises(TokenError) as not_executable:
        await tokens.consume(code.token, principal=ALICE)
    assert check_of(not_executable) == "wrong_type"
    with pytest.raises(TokenError) as no_explanation:
        await tokens.issue("explained", principal=ALICE, parent=code.token, explanation=" ")
    assert check_of(no_explanation) == "wrong_chain"


async def test_unknown_and_foreign_workspace_tokens_are_refused(
    store: LocalObjectStore, clock: FakeClock
) -> None:
    default = TokenService(store, "default", clock=clock)
    prod = TokenService(store, "prod", clock=clock)
    token = await chain_to(default)
    for service, candidate in ((prod, token), (default, "not-a-token"), (default, "")):
        with pytest.raises(TokenError) as refused:
            await service.consume(candidate, principal=ALICE)
        assert check_of(refused) == "unknown"


async def test_tampered_chain_is_refused(tokens: TokenService, store: LocalObjectStore) -> None:
    creds = await tokens.issue("credentials", principal=ALICE)
    code = await tokens.issue(
        "generated_code",
        principal=ALICE,
        parent=creds.token,
        operation="create",
        resource_type="AWS::S3::Bucket",
        payload=BUCKET,
    )
    explained = await tokens.issue(
        "explained", principal=ALICE, parent=code.token, explanation="Creates bucket demo."
    )
    key = f"default/tokens/issued/{token_hash(code.token)}.json"
    body = (await store.get(key)).body.replace(b'"AWS::S3::Bucket"', b'"AWS::IAM::Role"')
    await store.put(key, body)
    with pytest.raises(TokenError) as refused:
        await tokens.validate(explained.token, expected_type="explained")
    assert check_of(refused) == "wrong_chain"


async def test_storage_never_holds_the_token_or_the_payload_in_clear(
    tokens: TokenService, tmp_path: Path
) -> None:
    secret_props = {"BucketName": "demo", "MasterUserPassword": "hunter2-very-secret"}
    token = await chain_to(tokens, payload=secret_props)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert token.encode() not in stored
    assert b"hunter2-very-secret" not in stored
    assert token_hash(token).encode() in stored
    record = await tokens.validate(token, expected_type="scanned")
    assert record.payload == secret_props


async def test_chain_lists_every_step(tokens: TokenService) -> None:
    token = await chain_to(tokens)
    assert [r.type for r in await tokens.chain(token)] == [
        "scanned",
        "explained",
        "generated_code",
        "credentials",
    ]


async def test_update_without_identifier_is_invalid_input(tokens: TokenService) -> None:
    creds = await tokens.issue("credentials", principal=ALICE)
    with pytest.raises(InvalidInput):
        await tokens.issue(
            "generated_code",
            principal=ALICE,
            parent=creds.token,
            operation="update",
            resource_type="AWS::S3::Bucket",
            payload=[],
        )


async def test_cleanup_removes_only_long_expired_tokens(
    tokens: TokenService, store: LocalObjectStore, clock: FakeClock
) -> None:
    old = await chain_to(tokens)
    await tokens.consume(old)
    clock.advance(1000)
    fresh = await chain_to(tokens)
    clock.advance(870)  # old expired 970 s ago (> TTL + grace), fresh has 30 s left
    assert await tokens.cleanup_expired(limit=2) == 2
    assert await tokens.cleanup_expired() == 2
    assert await tokens.cleanup_expired() == 0
    await tokens.validate(fresh, expected_type="scanned")
    assert await store.list_keys("default/tokens/consumed/") == []
    with pytest.raises(TokenError) as gone:
        await tokens.consume(old)
    assert check_of(gone) == "unknown"


async def test_ancestors_outlive_the_tokens_issued_from_them(
    tokens: TokenService, clock: FakeClock
) -> None:
    creds = await tokens.issue("credentials", principal=ALICE)
    clock.advance(890)
    token = await chain_to(tokens, credentials=creds.token)
    clock.advance(800)  # the credentials token expired 790 s ago; the scanned one still lives
    assert await tokens.cleanup_expired() == 0
    assert [r.type for r in await tokens.chain(token)][-1] == "credentials"
    await tokens.consume(token, principal=ALICE)


async def _explained(tokens: TokenService, *, region: str | None = None) -> str:
    creds = await tokens.issue("credentials", principal=ALICE)
    code = await tokens.issue(
        "generated_code",
        principal=ALICE,
        parent=creds.token,
        operation="create",
        resource_type="AWS::S3::Bucket",
        payload=BUCKET,
        region=region,
    )
    explained = await tokens.issue(
        "explained", principal=ALICE, parent=code.token, explanation="Creates bucket demo."
    )
    return explained.token


async def test_a_token_is_bound_to_the_region_it_was_prepared_for(tokens: TokenService) -> None:
    explained = await _explained(tokens, region="us-west-2")
    scanned = await tokens.issue("scanned", principal=ALICE, parent=explained, scan=PASSED)

    with pytest.raises(TokenError) as refused:
        await tokens.consume(scanned.token, principal=ALICE, region="eu-west-1")

    assert check_of(refused) == "wrong_region"
    assert (await tokens.consume(scanned.token, principal=ALICE, region="us-west-2")).region == (
        "us-west-2"
    )


async def test_failed_findings_authorize_only_once_accepted(tokens: TokenService) -> None:
    explained = await _explained(tokens)
    findings = await tokens.issue("scan_findings", principal=ALICE, parent=explained, scan=FAILED)
    with pytest.raises(TokenError) as refused:
        await tokens.consume(findings.token, principal=ALICE)
    assert check_of(refused) == "wrong_type"
    with pytest.raises(TokenError):  # the FAILED scan itself cannot become a scanned token
        await tokens.issue("scanned", principal=ALICE, parent=findings.token, scan=FAILED)

    accepted = accept_findings(FAILED, ["CKV_AWS_53"], reason="demo", accepted_by="alice", at="t")
    scanned = await tokens.issue("scanned", principal=ALICE, parent=findings.token, scan=accepted)

    record = await tokens.consume(
        scanned.token, principal=ALICE, payload_digest=payload_digest(BUCKET)
    )
    assert record.checkov_results()["accepted_findings"]["checks"] == ["CKV_AWS_53"]


async def test_only_a_delete_is_explained_without_generated_code(tokens: TokenService) -> None:
    deleted = await tokens.issue(
        "explained",
        principal=ALICE,
        operation="delete",
        resource_type="AWS::S3::Bucket",
        identifier="demo",
        explanation="Deletes bucket demo.",
    )
    with pytest.raises(TokenError) as refused:
        await tokens.issue(
            "explained",
            principal=ALICE,
            operation="create",
            resource_type="AWS::S3::Bucket",
            payload=BUCKET,
            explanation="Creates bucket demo.",
        )
    assert check_of(refused) == "wrong_chain"
    with pytest.raises(TokenError) as other:
        await tokens.consume(
            deleted.token, expected_type="explained", principal=ALICE, identifier="another"
        )
    assert check_of(other) == "wrong_resource"
    record = await tokens.consume(
        deleted.token, expected_type="explained", principal=ALICE, identifier="demo"
    )
    assert record.operation == "delete"
