"""The team's users on the real local object store: tokens are shown once, only hashes kept."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.authz.users import USERS_KEY, UserDirectory
from ccstate.service.errors import InvalidInput, NotFound, PreconditionFailed


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def users(root: Path) -> UserDirectory:
    return UserDirectory(LocalObjectStore(root))


async def test_a_new_token_verifies_and_only_its_salted_hash_is_stored(
    users: UserDirectory, root: Path
) -> None:
    issued = await users.add("alice", "operator", by="admin")

    found = await users.verify(issued.token)

    assert found is not None and (found.name, found.role) == ("alice", "operator")
    stored = (root / USERS_KEY).read_text()
    secret = issued.token.rsplit(".", 1)[-1]
    assert secret not in stored and issued.token not in stored
    assert stat.S_IMODE((root / USERS_KEY).stat().st_mode) == 0o600


async def test_a_wrong_secret_or_an_unknown_user_is_refused_with_a_reason(
    users: UserDirectory,
) -> None:
    issued = await users.add("alice", "viewer", by="admin")
    prefix, name, _ = issued.token.split(".")

    wrong = await users.check(f"{prefix}.{name}.not-the-secret")
    unknown = await users.check("ccs1.Ym9i.whatever")  # "bob"
    garbage = await users.check("not-a-token")

    assert (wrong.user, wrong.name, wrong.reason) == (None, "alice", "wrong or rotated token")
    assert (unknown.user, unknown.reason) == (None, "unknown user")
    assert (garbage.user, garbage.reason) == (None, "not a ccstate token")


async def test_revoking_stops_the_token_and_rotating_replaces_it(users: UserDirectory) -> None:
    alice = await users.add("alice", "operator", by="admin")
    bob = await users.add("bob", "viewer", by="admin")

    rotated = await users.rotate("alice", by="admin")
    await users.revoke("bob", by="admin")

    assert await users.verify(alice.token) is None
    assert (await users.verify(rotated.token)).name == "alice"  # type: ignore[union-attr]
    assert (await users.check(bob.token)).reason == "revoked user"
    listed = {u.name: u for u in await users.list()}
    assert listed["bob"].revoked_by == "admin" and listed["alice"].rotated_at


async def test_a_user_is_added_once_and_bad_input_says_what_to_do(users: UserDirectory) -> None:
    await users.add("alice", "viewer", by="admin")

    with pytest.raises(PreconditionFailed, match="already exists"):
        await users.add("alice", "admin", by="admin")
    with pytest.raises(InvalidInput, match="Unknown role"):
        await users.add("carol", "root", by="admin")
    with pytest.raises(InvalidInput, match="Invalid user name"):
        await users.add("../etc", "viewer", by="admin")
    with pytest.raises(NotFound, match="no active user 'dave'"):
        await users.revoke("dave", by="admin")


async def test_two_admins_adding_users_at_once_both_land(root: Path) -> None:
    first, second = UserDirectory(LocalObjectStore(root)), UserDirectory(LocalObjectStore(root))

    await asyncio.gather(
        *(first.add(f"a{i}", "viewer", by="one") for i in range(5)),
        *(second.add(f"b{i}", "viewer", by="two") for i in range(5)),
    )

    assert len(await first.list()) == 10
