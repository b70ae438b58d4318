"""One explained change runs once, and a consumed token no longer unlocks what it authorized.

The execution token is recorded in the state (the key of its lineage entry), and the state and
the token records share one backend: whoever can read the state must not be able to unseal the
properties (write-only secrets included) the consumed token authorized.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.authz.tokens import TokenPrincipal, TokenService
from ccstate.service.changes.scanning import completed_result
from ccstate.service.errors import TokenError

ALICE = TokenPrincipal(arn="arn:aws:iam::123456789012:user/alice")
PASSED = completed_result(12, [], scanner="checkov")
SECRET = {"BucketName": "demo", "MasterUserPassword": "hunter2-very-secret"}


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "state")


@pytest.fixture
def tokens(store: LocalObjectStore) -> TokenService:
    return TokenService(store, "default")


async def generated(tokens: TokenService, operation: str = "create") -> str:
    creds = await tokens.issue("credentials", principal=ALICE)
    code = await tokens.issue(
        "generated_code",
        principal=ALICE,
        parent=creds.token,
        operation=operation,
        resource_type="AWS::S3::Bucket",
        identifier=None if operation == "create" else "demo",
        payload=SECRET if operation == "create" else None,
    )
    return code.token


async def explained(tokens: TokenService, code: str) -> str:
    issued = await tokens.issue(
        "explained", principal=ALICE, parent=code, explanation="Creates bucket demo."
    )
    return issued.token


async def scanned(tokens: TokenService, explained_token: str) -> str:
    issued = await tokens.issue("scanned", principal=ALICE, parent=explained_token, scan=PASSED)
    return issued.token


async def test_two_scans_of_one_explanation_execute_once(tokens: TokenService) -> None:
    explanation = await explained(tokens, await generated(tokens))
    first, second = await scanned(tokens, explanation), await scanned(tokens, explanation)
    await tokens.consume(first, principal=ALICE)
    with pytest.raises(TokenError) as again:
        await tokens.consume(second, principal=ALICE)
    assert again.value.details["check"] == "consumed"


async def test_two_explanations_of_one_generated_change_execute_once(
    tokens: TokenService,
) -> None:
    code = await generated(tokens)
    first = await scanned(tokens, await explained(tokens, code))
    second = await scanned(tokens, await explained(tokens, code))
    await tokens.consume(first, principal=ALICE)
    with pytest.raises(TokenError) as again:
        await tokens.consume(second, principal=ALICE)
    assert again.value.details["check"] == "consumed"


async def test_two_explanations_of_one_delete_execute_once(tokens: TokenService) -> None:
    code = await generated(tokens, "delete")
    first, second = await explained(tokens, code), await explained(tokens, code)
    await tokens.consume(first, expected_type="explained", principal=ALICE, identifier="demo")
    with pytest.raises(TokenError) as again:
        await tokens.consume(second, expected_type="explained", principal=ALICE)
    assert again.value.details["check"] == "consumed"


async def test_consumed_token_no_longer_unseals_what_it_authorized(
    tokens: TokenService, store: LocalObjectStore
) -> None:
    token = await scanned(tokens, await explained(tokens, await generated(tokens)))
    record = await tokens.consume(token, principal=ALICE)
    assert record.payload == SECRET  # the mutation gets it, once
    reread = TokenService(store, "default")  # another server, or a state reader
    assert (await reread.chain(token))[0].payload is None
    with pytest.raises(TokenError) as replay:
        await reread.consume(token, principal=ALICE)
    assert replay.value.details["check"] == "consumed"
