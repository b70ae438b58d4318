"""Token records written before records listed their ancestors are still accepted: the chain is
walked, as it was, and the prepared change still runs once."""

from __future__ import annotations

import json

import pytest
from ccstate.service.authz import sealing
from ccstate.service.authz.tokens import token_hash
from ccstate.service.errors import TokenError
from ccstate.service.state.model import canonical_json

from tests.unit.usecases.conftest import ALICE, BUCKET, World


async def make_legacy(world: World, token: str) -> None:
    """Rewrite a record as the previous release wrote it: no ancestor list, payload sealed
    under the token's hash alone."""
    key = f"default/tokens/issued/{token_hash(token)}.json"
    stored = await world.objects.get(key)
    assert stored is not None
    body = json.loads(stored.body)
    payload = sealing.unseal(token, body["sealed_payload"], _bound(body))
    body.pop("ancestors")
    body["sealed_payload"] = sealing.seal(token, payload)
    await world.objects.put(key, json.dumps(body, sort_keys=True).encode())


def _bound(body: dict[str, object]) -> bytes:
    return canonical_json({k: v for k, v in body.items() if k != "sealed_payload"})


async def test_a_legacy_scanned_token_still_creates_once(world: World) -> None:
    tokens = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "old"})
    await make_legacy(world, tokens["security_scan_token"])

    await world.operations.create(ALICE, resource_type=BUCKET, **tokens)
    with pytest.raises(TokenError) as replay:
        await world.operations.create(ALICE, resource_type=BUCKET, **tokens)

    assert world.cloud.calls["create_resource"] == 1
    assert replay.value.details["check"] == "consumed"


async def test_a_legacy_token_from_another_chain_is_refused(world: World) -> None:
    first = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "a"})
    other = await world.tokens_for(resource_type=BUCKET, properties={"BucketName": "b"})
    await make_legacy(world, first["security_scan_token"])

    with pytest.raises(TokenError) as refused:
        await world.operations.create(
            ALICE,
            resource_type=BUCKET,
            credentials_token=other["credentials_token"],
            explained_token=first["explained_token"],
            security_scan_token=first["security_scan_token"],
        )

    assert refused.value.details["check"] == "wrong_chain"
    assert world.cloud.calls["create_resource"] == 0
