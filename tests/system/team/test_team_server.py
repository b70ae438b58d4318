"""The team server over real HTTP on 127.0.0.1: every way in that must be refused is refused
with the right status, logged with who and why, and changes nothing; the people who may work
do, and are recorded as themselves."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx2
import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.sandbox import Sandbox
from ccstate.service.authz.users import UserDirectory
from ccstate.service.ports import LockScope

from tests.system.mcp.harness import aws_kwargs, server_env
from tests.system.team.harness import (
    AUDIENCE,
    ISSUER,
    REPO,
    Issuer,
    ServerProcess,
    initialize,
    mcp_client,
    post,
    run,
    structured,
)

S3 = "AWS::S3::Bucket"
MUTATING = {"create_resource", "update_resource", "delete_resource", "import_resource"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def team_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("team")


@pytest.fixture(scope="module")
def backend(team_dir: Path) -> Path:
    path = team_dir / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(scope="module")
def tokens(backend: Path) -> dict[str, str]:
    users = UserDirectory(LocalObjectStore(backend))

    async def add() -> dict[str, str]:
        issued = {}
        people = [
            ("alice", "viewer"),
            ("bob", "operator"),
            ("carol", "viewer"),
            ("dave", "admin"),
            ("erin", "operator"),
        ]
        for name, role in people:
            issued[name] = (await users.add(name, role, by="test")).token
        return issued

    return run(add())


@pytest.fixture(scope="module")
def issuer(team_dir: Path) -> Issuer:
    return Issuer.create(team_dir)


@pytest.fixture(scope="module")
def server(
    sandbox: Sandbox, backend: Path, team_dir: Path, issuer: Issuer, tokens: dict[str, str]
) -> Iterator[ServerProcess]:
    home = team_dir / "home"
    home.mkdir()
    process = ServerProcess(
        [
            "--sandbox-endpoint",
            sandbox.endpoint_url,
            "--backend",
            backend.as_uri(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
            "--jwks-file",
            str(issuer.jwks_file),
            "--jwt-user-claim",
            "email",
        ],
        server_env(sandbox.env(), home, CCSTATE_USER="server-process"),
        team_dir / "server.log",
    )
    try:
        yield process.wait_ready()
    finally:
        process.stop()


def log_serials(backend: Path) -> list[str]:
    log = backend / "default" / "log"
    return sorted(p.name for p in log.iterdir()) if log.exists() else []


def assert_refused_401(response: httpx2.Response, server: ServerProcess) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    metadata = f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"'
    assert metadata in challenge


def connect_fails(server: ServerProcess, token: str | None) -> bool:
    async def attempt() -> bool:
        try:
            async with mcp_client(server.url, token) as client:
                await client.list_tools()
        except Exception:  # the SDK client raises on 401/403
            return True
        return False

    return run(attempt())


# --------------------------------------------------------------------------- refusals


def test_no_token_is_refused_with_401_and_the_resource_metadata(server: ServerProcess) -> None:
    response = post(server.url, None, initialize())

    assert_refused_401(response, server)
    assert connect_fails(server, None)
    metadata = httpx2.get(server.base + "/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == server.url and metadata["scopes_supported"] == ["ccstate"]
    assert "refused HTTP 401 POST /mcp: who=anonymous" in server.log()


def test_a_wrong_token_is_refused_and_logged_with_who_and_why(
    server: ServerProcess, tokens: dict[str, str]
) -> None:
    forged = tokens["bob"].rsplit(".", 1)[0] + ".forged-secret"

    assert_refused_401(post(server.url, forged, initialize()), server)
    assert_refused_401(post(server.url, "something-else", initialize()), server)
    assert connect_fails(server, forged)

    log = server.log()
    assert "refused ccstate token: who=bob why=wrong or rotated token" in log
    assert "forged-secret" not in log and tokens["bob"] not in log


def test_a_revoked_token_is_refused_on_the_next_request(
    server: ServerProcess, tokens: dict[str, str], backend: Path, team_dir: Path
) -> None:
    assert post(server.url, tokens["carol"], initialize()).status_code == 200

    revoke = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccstate",
            "users",
            "revoke",
            "carol",
            "--backend",
            backend.as_uri(),
        ],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env=server_env({}, team_dir),
    )

    assert revoke.returncode == 0, revoke.stderr
    assert_refused_401(post(server.url, tokens["carol"], initialize()), server)
    assert "refused ccstate token: who=carol why=revoked user" in server.log()


ADMIN_TOOLS = {"list_users", "revoke_user", "force_unlock"}


def test_only_an_admin_sees_and_uses_the_user_and_force_unlock_tools(
    server: ServerProcess, tokens: dict[str, str], backend: Path
) -> None:
    locks = LocalLockManager(backend)
    stale = run(
        locks.acquire(
            LockScope("default", "crashed-bucket"),
            operation="update",
            who="a server that crashed",
            lease_seconds=600,
            timeout=1,
        )
    )

    async def as_bob() -> tuple[set[str], list[int]]:
        async with mcp_client(server.url, tokens["bob"]) as client:
            names = {t.name for t in (await client.list_tools()).tools}
        statuses = [
            post(server.url, tokens["bob"], call(tool, args)).status_code
            for tool, args in [
                ("list_users", {}),
                ("revoke_user", {"name": "erin"}),
                ("force_unlock", {"lock_id": stale.id}),
            ]
        ]
        return names, statuses

    names, statuses = run(as_bob())

    assert "list_locks" in names and not ADMIN_TOOLS & names
    assert statuses == [403, 403, 403]
    assert [lock.id for lock in run(locks.list_locks("default"))] == [stale.id]
    assert post(server.url, tokens["erin"], initialize()).status_code == 200
    log = server.log()
    for tool in ADMIN_TOOLS:
        assert (
            "refused HTTP 403 POST /mcp: who=bob (role operator) client=127.0.0.1 "
            f"why=role may not call {tool} (needs admin)"
        ) in log

    async def as_dave() -> tuple[set[str], dict, dict, dict, dict]:
        async with mcp_client(server.url, tokens["dave"]) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            users = structured(await client.call_tool("list_users", {}))
            held = structured(await client.call_tool("list_locks", {}))
            unlocked = structured(await client.call_tool("force_unlock", {"lock_id": stale.id}))
            revoked = structured(await client.call_tool("revoke_user", {"name": "erin"}))
        return names, users, held, unlocked, revoked

    names, users, held, unlocked, revoked = run(as_dave())

    assert names >= ADMIN_TOOLS
    listed = {u["name"]: u["role"] for u in users["users"]}
    assert listed["dave"] == "admin" and listed["erin"] == "operator"
    assert all("token_hash" not in u and "salt" not in u for u in users["users"])
    assert [(lk["id"], lk["who"]) for lk in held["locks"]] == [(stale.id, "a server that crashed")]
    assert unlocked["unlocked"]["resource"] == "crashed-bucket"
    assert run(locks.list_locks("default")) == []
    assert revoked["revoked"]["name"] == "erin" and revoked["revoked"]["revoked_by"].startswith(
        "dave"
    )
    assert_refused_401(post(server.url, tokens["erin"], initialize()), server)
    log = server.log()
    assert f"lock {stale.id} on resource 'crashed-bucket' in workspace 'default'" in log
    assert "force-unlocked by dave" in log
    assert "user erin (role operator) revoked by dave" in log
    assert "refused ccstate token: who=erin why=revoked user" in log


def call(tool: str, arguments: dict[str, object]) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, "expired"),
        ({"aud": "another-service"}, "wrong audience"),
        ({"iss": "https://evil.example.test"}, "wrong issuer"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
def test_a_jwt_that_is_expired_or_for_someone_else_is_refused(
    server: ServerProcess, issuer: Issuer, claims: dict[str, object], why: str
) -> None:
    token = issuer.token("mallory", email="mallory@example.test", **claims)

    assert_refused_401(post(server.url, token, initialize()), server)
    assert connect_fails(server, token)
    assert f"refused JWT: who=mallory why={why}" in server.log()


def test_a_jwt_signed_by_another_key_is_refused(server: ServerProcess, team_dir: Path) -> None:
    other = Issuer.create(team_dir / "other" if (team_dir / "other").mkdir() else team_dir)

    token = other.token("mallory", email="mallory@example.test")

    assert_refused_401(post(server.url, token, initialize()), server)


def test_a_jwt_without_the_ccstate_scope_gets_403_insufficient_scope(
    server: ServerProcess, issuer: Issuer
) -> None:
    token = issuer.token("dora", scope="openid email", email="dora@example.test")

    response = post(server.url, token, initialize())

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert connect_fails(server, token)
    assert "refused HTTP 403 POST /mcp: who=dora@example.test (role viewer)" in server.log()


def test_a_viewer_sees_only_read_tools_and_a_mutation_gets_403_insufficient_scope(
    server: ServerProcess, tokens: dict[str, str], backend: Path, sandbox: Sandbox
) -> None:
    before = log_serials(backend)
    s3 = boto3.client("s3", **aws_kwargs(sandbox.env()))
    buckets_before = s3.list_buckets()["Buckets"]

    async def as_alice() -> tuple[list[str], Exception | None, dict[str, object]]:
        async with mcp_client(server.url, tokens["alice"]) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            info = structured(await client.call_tool("get_aws_session_info", {}))
            try:
                await client.call_tool(
                    "create_resource",
                    {
                        "resource_type": S3,
                        "credentials_token": info["credentials_token"],
                        "explained_token": "x",
                        "security_scan_token": "y",
                    },
                )
            except Exception as exc:  # the 403 reaches the SDK client as an error
                return names, exc, info
            return names, None, info

    names, error, info = run(as_alice())

    assert "load_state" in names and not MUTATING & set(names)
    assert error is not None
    assert info["user"] == "alice"
    raw = post(
        server.url,
        tokens["alice"],
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "delete_resource"}},
    )
    assert raw.status_code == 403
    challenge = raw.headers["www-authenticate"]
    assert (
        'error="insufficient_scope"' in challenge
        and 'scope="ccstate ccstate:operator"' in challenge
    )
    assert "resource_metadata=" in challenge
    assert log_serials(backend) == before
    assert s3.list_buckets()["Buckets"] == buckets_before
    assert (
        "refused HTTP 403 POST /mcp: who=alice (role viewer) client=127.0.0.1 "
        "why=role may not call create_resource (needs operator)"
    ) in server.log()


def test_a_session_id_presented_by_another_principal_is_refused(
    server: ServerProcess, tokens: dict[str, str]
) -> None:
    opened = post(server.url, tokens["alice"], initialize())
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    post(server.url, tokens["alice"], initialized, session)

    stolen = post(server.url, tokens["bob"], listing, session)
    own = post(server.url, tokens["alice"], listing, session)

    assert stolen.status_code == 404
    assert own.status_code == 200
    assert (
        "refused HTTP 404 POST /mcp: who=bob (role operator) client=127.0.0.1 "
        "why=session of another principal"
    ) in server.log()


# --------------------------------------------------------------------------- who works


def test_an_operators_change_is_recorded_under_the_authenticated_person(
    server: ServerProcess, tokens: dict[str, str], backend: Path
) -> None:
    async def as_bob() -> dict[str, object]:
        async with mcp_client(server.url, tokens["bob"]) as client:

            async def ok(tool: str, **arguments: object) -> dict[str, object]:
                result = await client.call_tool(tool, arguments)
                data = structured(result)
                assert not result.is_error, json.dumps(data)
                return data

            await ok("check_environment_variables")
            credentials = (await ok("get_aws_session_info"))["credentials_token"]
            generated = await ok(
                "generate_infrastructure_code",
                credentials_token=credentials,
                resource_type=S3,
                properties={"BucketName": "team-bucket-bob"},
            )
            explained = await ok(
                "explain",
                generated_code_token=generated["generated_code_token"],
                user_intent="a bucket for the team",
            )
            scanned = await ok("run_checkov", explained_token=explained["explained_token"])
            await ok(
                "create_resource",
                resource_type=S3,
                credentials_token=credentials,
                explained_token=explained["explained_token"],
                security_scan_token=scanned["security_scan_token"],
            )
            return await ok("show_resource_history", identifier="team-bucket-bob")

    history = run(as_bob())

    entry = history["entries"][-1]  # type: ignore[index]
    assert entry["user"] == "bob" and str(entry["aws_session"]).startswith("arn:aws:")
    last = json.loads((backend / "default" / "log" / log_serials(backend)[-1]).read_text())
    assert last["principal"]["authenticated_user"] == "bob"
    assert not last["principal"].get("user")  # not the server process's user


def test_tokens_prepared_by_one_person_do_not_execute_for_another(
    server: ServerProcess, tokens: dict[str, str], issuer: Issuer, backend: Path
) -> None:
    async def prepare_as_bob() -> dict[str, str]:
        async with mcp_client(server.url, tokens["bob"]) as client:
            credentials = structured(await client.call_tool("get_aws_session_info", {}))
            generated = structured(
                await client.call_tool(
                    "generate_infrastructure_code",
                    {
                        "credentials_token": credentials["credentials_token"],
                        "resource_type": S3,
                        "properties": {"BucketName": "bobs-prepared-bucket"},
                    },
                )
            )
            explained = structured(
                await client.call_tool(
                    "explain",
                    {"generated_code_token": generated["generated_code_token"], "user_intent": "x"},
                )
            )
            scanned = structured(
                await client.call_tool(
                    "run_checkov", {"explained_token": explained["explained_token"]}
                )
            )
            return {
                "credentials_token": credentials["credentials_token"],
                "explained_token": explained["explained_token"],
                "security_scan_token": scanned["security_scan_token"],
            }

    erin = issuer.token("00u-erin", scope="ccstate ccstate:operator", email="erin@example.test")

    async def execute_as_erin(chain: dict[str, str]) -> tuple[bool, dict[str, object]]:
        async with mcp_client(server.url, erin) as client:
            result = await client.call_tool("create_resource", {"resource_type": S3, **chain})
            return bool(result.is_error), structured(result)

    chain = run(prepare_as_bob())
    before = log_serials(backend)
    failed, answer = run(execute_as_erin(chain))

    assert failed and answer["error"] == "token_error", answer
    assert log_serials(backend) == before


def test_a_jwt_person_is_known_by_the_configured_claim(
    server: ServerProcess, issuer: Issuer
) -> None:
    token = issuer.token("00u-erin", scope="ccstate ccstate:operator", email="erin@example.test")

    async def as_erin() -> tuple[list[str], dict[str, object]]:
        async with mcp_client(server.url, token) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            return names, structured(await client.call_tool("get_aws_session_info", {}))

    names, info = run(as_erin())

    assert set(names) >= MUTATING
    assert info["user"] == "erin@example.test"


def test_healthz_is_open_and_metrics_count_tools_and_refusals(
    server: ServerProcess, tokens: dict[str, str]
) -> None:
    post(server.url, "not-a-token", initialize())

    async def read() -> None:
        async with mcp_client(server.url, tokens["alice"]) as client:
            await client.call_tool("load_state", {})

    run(read())

    health = httpx2.get(server.base + "/healthz")
    anonymous = httpx2.get(server.base + "/metrics")
    metrics = httpx2.get(
        server.base + "/metrics", headers={"authorization": f"Bearer {tokens['alice']}"}
    )

    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert anonymous.status_code == 401
    assert metrics.status_code == 200
    assert 'ccstate_token_refusals_total{reason="malformed"}' in metrics.text
    assert 'ccstate_http_refusals_total{reason="Authentication required",status="401"}' in (
        metrics.text
    )
    assert 'ccstate_tool_requests_total{outcome="ok",tool="load_state"}' in metrics.text
    for name in ("ccstate_commits_total", "ccstate_lock_wait_seconds_count"):
        assert name in metrics.text


# --------------------------------------------------------------------------- binding, TLS


def test_no_auth_beyond_loopback_is_refused_before_anything_starts(team_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccstate",
            "serve",
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--no-auth",
            "--backend",
            (team_dir / "unused").as_uri(),
        ],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env=server_env({}, team_dir),
        timeout=60,
    )

    assert result.returncode == 2
    assert "--no-auth is refused on 0.0.0.0" in result.stderr
    assert not (team_dir / "unused").exists()
