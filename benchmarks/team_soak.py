"""Team soak: several ``ccstate serve --transport http`` processes on one S3 backend, many
authenticated MCP clients, mixed operations, one server killed with SIGKILL mid-run.

Everything is real: the offline sandbox (moto + Cloud Control) in its own process serves both
the cloud and the backend's S3, DynamoDB and KMS (made by ``ccstate bootstrap``); each server
is a process; each client is the SDK's streamable HTTP client with its own person's bearer
token. A client works on the server ``i % servers``; when that server dies it moves on to the
next live one. Operations: reads (``load_state``, ``show_resource_history``), creates, updates
(tags), deletes (S3 buckets, the full token chain each), and drift checks.

Right after the kill, ``ccstate recover`` runs beside the soak, as the team's admin would run
it (a restarted server does the same): it waits out the killed server's leases, takes its locks
over and records what its changes in flight did, while the other servers keep working.

Afterwards (``verify``): every operation that reported success is in the lineage exactly once
(its commit at the reported serial names it, its execution token is in no other commit); the
log has every serial from 1 to the head; no change is left open (no intent); any lock the killed
server still held (taken before its intent was written) is taken over after its lease by the
real lock manager, and then no lock remains.

``python -m benchmarks --only team_soak`` writes the numbers into docs/performance.md;
``tests/system/team/test_soak.py`` runs a smaller round and asserts the invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NAME = "team_soak"
TITLE = "Team server soak: 3 HTTP servers on one S3 backend, 20 clients, one SIGKILL"
ROOT = Path(__file__).resolve().parent.parent
S3 = "AWS::S3::Bucket"
MIX = (("read", 35), ("create", 25), ("update", 15), ("delete", 10), ("drift", 15))


@dataclass(frozen=True)
class SoakConfig:
    servers: int = 3
    clients: int = 20
    ops_per_client: int = 100  # 2,000 operations
    kill_after: float = 0.4  # SIGKILL server 0 after this share of the operations
    # Short, so the takeover is seen in the run; long enough that a live server's heartbeat,
    # starved on a busy 2-core machine, does not lapse (5 s did there: docs/performance.md).
    lease_seconds: float = 15.0
    latency_ms: int = 0
    seed: int = 7


@dataclass
class Success:
    operation: str
    identifier: str
    serial: int
    token: str


@dataclass
class Tally:
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: Counter[str] = field(default_factory=Counter)
    successes: list[Success] = field(default_factory=list)
    after_kill_ok: int = 0
    done: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(home: Path, endpoint: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SECURITY_SCANNING": "disabled",
    }


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(httpx2.TransportError):
            httpx2.get(url, timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Cluster:
    workdir: Path
    config: SoakConfig
    endpoint: str = ""
    backend_url: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    killed: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Cluster:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        port = free_port()
        sandbox = self._spawn(
            ["sandbox", "--port", str(port), "--latency-ms", str(self.config.latency_ms)],
            base_env(home, ""),
            "sandbox",
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_http(self.endpoint + "/moto-api/", sandbox)
        env = base_env(home, self.endpoint)
        bucket, table = f"soak-{uuid.uuid4().hex[:10]}", f"soak-locks-{uuid.uuid4().hex[:8]}"
        report = self._cli(env, "bootstrap", "--bucket", bucket, "--table", table)
        self.backend_url = f"s3://{bucket}/team?table={table}&kms_key={report['kms_key']}"
        self.tokens = asyncio.run(self._add_users())
        server_env = {**env, "CCSTATE_LOCK_LEASE": f"{self.config.lease_seconds}s"}
        self.env = server_env
        for i in range(self.config.servers):
            port = free_port()
            process = self._spawn(
                [
                    "serve",
                    "--transport",
                    "http",
                    "--port",
                    str(port),
                    "--sandbox-endpoint",
                    self.endpoint,
                    "--backend",
                    self.backend_url,
                ],
                server_env,
                f"server{i}",
            )
            self.servers.append((f"http://127.0.0.1:{port}", process))
        for url, process in self.servers:
            wait_http(url + "/healthz", process)
        return self

    def _spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "ccstate", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        self.processes.append(process)
        return process

    def _cli(self, env: dict[str, str], *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "ccstate", *args, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ccstate {' '.join(args)} failed: {done.stderr}")
        return json.loads(done.stdout)

    async def _add_users(self) -> list[str]:
        """One operator per client, as `ccstate users add` stores them."""
        from ccstate.service.authz.users import UserDirectory

        async with self.open_backend() as backend:
            users = UserDirectory(backend.objects)
            return [
                (await users.add(f"user{i:02d}", "operator", by="soak")).token
                for i in range(self.config.clients)
            ]

    @contextlib.asynccontextmanager
    async def open_backend(self) -> AsyncIterator[Any]:
        from ccstate.backends.config import load_settings
        from ccstate.backends.factory import open_backend

        for name, value in base_env(self.workdir, self.endpoint).items():
            if name.startswith("AWS_"):
                os.environ[name] = value
        settings = load_settings({"backend": self.backend_url})
        backend = await open_backend(self.backend_url, settings=settings)
        try:
            yield backend
        finally:
            await backend.close()

    async def recover(self) -> dict[str, Any]:
        """``ccstate recover`` in its own process, as an admin runs it after a crash."""
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ccstate",
            "recover",
            "--backend",
            self.backend_url,
            "--output",
            "json",
            env=self.env,
            cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode not in (0, 10):  # 10: some left open (a live change's lock)
            raise RuntimeError(f"ccstate recover failed ({process.returncode}): {err.decode()}")
        report = json.loads(out)
        report["seconds"] = round(time.perf_counter() - started, 1)
        return report

    async def metrics(self, index: int) -> str:
        import httpx2

        headers = {"Authorization": f"Bearer {self.tokens[0]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            return (await http.get(self.servers[index][0] + "/metrics")).text

    def kill(self, index: int) -> None:
        self.servers[index][1].send_signal(signal.SIGKILL)
        self.servers[index][1].wait()
        self.killed = index

    def alive(self) -> list[int]:
        return [i for i, (_, p) in enumerate(self.servers) if p.poll() is None]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the sandbox and each live server (from /proc)."""
        named = [("sandbox", self.processes[0])] + [
            (f"server{i}", p) for i, (_, p) in enumerate(self.servers) if p.poll() is None
        ]
        return {name: _cpu_of(process.pid) for name, process in named}

    def server_log(self, index: int) -> str:
        return (self.workdir / f"server{index}.log").read_text()


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- clients


class ServerGone(Exception):
    """The client's server stopped answering (it was killed)."""


class Worker:
    def __init__(self, index: int, cluster: Cluster, tally: Tally, soak: Soak) -> None:
        self.index = index
        self.cluster = cluster
        self.tally = tally
        self.soak = soak
        self.rng = random.Random(cluster.config.seed * 1000 + index)
        self.mine: list[str] = []
        self.server = index % cluster.config.servers
        self.client: Any = None
        self.last_error = ""

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:
        import httpx2
        from mcp.client import Client
        from mcp.client.streamable_http import streamable_http_client

        url = self.cluster.servers[self.server][0] + "/mcp"
        headers = {"Authorization": f"Bearer {self.cluster.tokens[self.index]}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            yield client

    async def run(self) -> None:
        remaining = self.cluster.config.ops_per_client
        while remaining > 0:
            try:
                async with self.connect() as client:
                    self.client = client
                    while remaining > 0:
                        await self.operation()
                        remaining -= 1
                        self.tally.done += 1
                        self.soak.progress.set()
            except (ServerGone, Exception) as exc:
                if self.server in self.cluster.alive() and not isinstance(exc, ServerGone):
                    raise
                remaining -= 1  # the operation in flight failed with its server
                self.tally.outcomes["server_gone"] += 1
                self.tally.done += 1
                alive = self.cluster.alive()
                self.server = alive[self.index % len(alive)]

    async def call(self, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
        started = time.perf_counter()
        try:
            result = await self.client.call_tool(tool, arguments)
        except Exception as exc:
            if self.server not in self.cluster.alive():
                raise ServerGone(tool) from exc
            raise
        self.tally.calls[tool].append(time.perf_counter() - started)
        data = result.structured_content or {}
        if result.is_error:
            self.last_error = f"{tool}: {data.get('error', 'error')}"
        return not result.is_error, data

    async def operation(self) -> None:
        kind = self.rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        if kind in ("update", "delete", "drift") and not self.mine:
            kind = "create"
        self.last_error = ""
        ok = await getattr(self, kind)()
        self.tally.outcomes[f"{kind}:ok" if ok else f"{kind}:refused ({self.last_error})"] += 1
        if ok and self.soak.killed_at is not None:
            self.tally.after_kill_ok += 1

    async def read(self) -> bool:
        if self.mine and self.rng.random() < 0.5:
            ok, _ = await self.call("show_resource_history", identifier=self.rng.choice(self.mine))
            return ok
        ok, _ = await self.call("load_state")
        return ok

    async def drift(self) -> bool:
        ok, _ = await self.call("detect_drift", identifier=self.rng.choice(self.mine))
        return ok

    async def chain(self, **generate: Any) -> dict[str, str] | None:
        ok, session = await self.call("get_aws_session_info")
        if not ok:
            return None
        ok, generated = await self.call(
            "generate_infrastructure_code",
            credentials_token=session["credentials_token"],
            resource_type=S3,
            **generate,
        )
        if not ok:
            return None
        ok, explained = await self.call(
            "explain", generated_code_token=generated["generated_code_token"], user_intent="soak"
        )
        if not ok:
            return None
        tokens = {
            "credentials_token": session["credentials_token"],
            "explained_token": explained["explained_token"],
        }
        if generated.get("operation") != "delete":
            ok, scanned = await self.call("run_checkov", explained_token=tokens["explained_token"])
            if not ok:
                return None
            tokens["security_scan_token"] = scanned["security_scan_token"]
        return tokens

    def record(self, data: dict[str, Any]) -> None:
        self.tally.successes.append(
            Success(
                data["operation"], data["identifier"], data["state_serial"], data["execution_token"]
            )
        )

    async def create(self) -> bool:
        name = f"soak-{self.index:02d}-{uuid.uuid4().hex[:8]}"
        tokens = await self.chain(properties={"BucketName": name})
        if tokens is None:
            return False
        ok, data = await self.call("create_resource", resource_type=S3, **tokens)
        if ok:
            self.record(data)
            self.mine.append(name)
        return ok

    async def update(self) -> bool:
        name = self.rng.choice(self.mine)
        patch = [{"op": "add", "path": "/Tags", "value": [{"Key": "n", "Value": str(time.time())}]}]
        tokens = await self.chain(operation="update", identifier=name, patch_document=patch)
        if tokens is None:
            return False
        ok, data = await self.call(
            "update_resource", resource_type=S3, identifier=name, patch_document=patch, **tokens
        )
        if ok:
            self.record(data)
        return ok

    async def delete(self) -> bool:
        name = self.mine.pop(self.rng.randrange(len(self.mine)))
        tokens = await self.chain(operation="delete", identifier=name)
        if tokens is None:
            return False
        ok, data = await self.call(
            "delete_resource", resource_type=S3, identifier=name, confirmed=True, **tokens
        )
        if ok:
            self.record(data)
        return ok


@dataclass
class Soak:
    cluster: Cluster
    tally: Tally = field(default_factory=Tally)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    killed_at: float | None = None
    lock_at_kill: str | None = None
    locks_at_kill: list[str] = field(default_factory=list)
    recovery: asyncio.Task[dict[str, Any]] | None = None

    async def run(self) -> float:
        config = self.cluster.config
        workers = [Worker(i, self.cluster, self.tally, self) for i in range(config.clients)]
        started = time.perf_counter()
        killer = asyncio.create_task(self.killer())
        await asyncio.gather(*(w.run() for w in workers))
        seconds = time.perf_counter() - started
        killer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killer
        return seconds

    async def killer(self) -> None:
        """SIGKILL server 0 once enough operations are done, in the middle of a change: while
        it holds a lock and the change's intent is open (Cloud Control called, not yet
        committed), polled as `ccstate lock list` and `ccstate recover` read them; after 5 s
        of polling, while it holds a lock at all."""
        config = self.cluster.config
        threshold = int(config.clients * config.ops_per_client * config.kill_after)
        while self.tally.done < threshold:
            self.progress.clear()
            await self.progress.wait()
        victim = self.cluster.servers[0][1].pid
        async with self.cluster.open_backend() as backend:
            deadline = time.monotonic() + 5
            while self.lock_at_kill is None:
                held = [k for k in await backend.locks.list_locks("default") if k.pid == victim]
                if held and (time.monotonic() > deadline or await _open_intent_of(backend, victim)):
                    self.lock_at_kill = await _still_held(backend, victim)
                    if self.lock_at_kill is not None:
                        break  # stopped while it holds the lock: it dies holding it
                await asyncio.sleep(0.05)
        self.cluster.kill(0)
        self.killed_at = time.perf_counter()
        async with self.cluster.open_backend() as backend:
            left = await backend.locks.list_locks("default")
        self.locks_at_kill = sorted(str(k.resource) for k in left if k.pid == victim)
        self.recovery = asyncio.create_task(self.cluster.recover())


async def _still_held(backend: Any, pid: int) -> Any:
    """Stop ``pid`` and look again: a lock seen a moment ago may have been released since.
    The resource of a lock it still holds (the process stays stopped until it is killed), or
    None (it is let go on)."""
    os.kill(pid, signal.SIGSTOP)
    held = [k for k in await backend.locks.list_locks("default") if k.pid == pid]
    if held:
        return held[0].resource
    os.kill(pid, signal.SIGCONT)
    return None


async def _open_intent_of(backend: Any, pid: int) -> bool:
    from ccstate.service.changes.journal import IntentJournal

    journal = IntentJournal(backend.objects, "default")
    for key in await journal.open_keys():
        intent = await journal.read(key)
        if intent is not None and intent.holder.endswith(f"pid {pid}"):
            return True
    return False


# --------------------------------------------------------------------------- verification


async def takeover(soak: Soak) -> dict[str, Any]:
    """What ``ccstate recover`` (started at the kill) did with the killed server's locks."""
    report = await soak.recovery if soak.recovery is not None else {"intents": [], "seconds": 0}
    settled = {row["identifier"]: row["result"] for row in report["intents"] if row.get("settled")}
    return {
        "locks_at_kill": soak.locks_at_kill,
        "recover_seconds": report["seconds"],
        "recover_settled": [
            {k: row[k] for k in ("operation", "identifier", "result", "outcome", "serial")}
            for row in report["intents"]
        ],
        "taken_over_by_recover": [r for r in soak.locks_at_kill if r in settled],
    }


async def lock_waits(cluster: Cluster) -> dict[str, float]:
    """Lock waits as the surviving servers' /metrics count them."""
    total = count = 0.0
    for index in cluster.alive():
        for line in (await cluster.metrics(index)).splitlines():
            if line.startswith("ccstate_lock_wait_seconds_sum"):
                total += float(line.split()[-1])
            elif line.startswith("ccstate_lock_wait_seconds_count"):
                count += float(line.split()[-1])
    return {"acquired": int(count), "mean_ms": round(1000 * total / count, 1) if count else 0.0}


async def verify(cluster: Cluster, tally: Tally) -> dict[str, Any]:
    """The invariants, read from the backend with the real store and lock manager."""
    from ccstate.service.changes.journal import IntentJournal
    from ccstate.service.ports import LockScope

    async with cluster.open_backend() as backend:
        store = backend.state_store("default")
        head = await store.head()
        commits = [await store.commit_at(serial) for serial in range(1, head + 1)]
        missing = [s for s, c in zip(range(1, head + 1), commits, strict=True) if c.serial != s]
        by_token = Counter(c.execution_token for c in commits if c.execution_token)
        not_found, repeated = [], []
        for ok in tally.successes:
            commit = commits[ok.serial - 1]
            if not any(
                ch.identifier == ok.identifier and ch.outcome == "SUCCESS" for ch in commit.changes
            ):
                not_found.append(ok.__dict__)
            if by_token[ok.token] != 1:
                repeated.append(ok.__dict__)
        left = await backend.locks.list_locks("default")
        now = datetime.now(UTC)
        held_by_killed = [lk for lk in left if lk.pid == cluster.servers[0][1].pid]
        taken_over = []
        for lock in left:
            wait = (lock.expires - now).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait + 0.5)
            scope = LockScope(lock.workspace, lock.resource)
            info = await backend.locks.acquire(
                scope, operation="soak takeover", who="soak verifier", lease_seconds=10, timeout=30
            )
            await backend.locks.release(info)
            taken_over.append(lock.resource)
        remaining = await backend.locks.list_locks("default")
        journal = IntentJournal(backend.objects, "default")
        left_open = len(await journal.open_keys())
        # A change whose client was told it failed with its outcome unknown (e.g. its lease ran
        # out before the commit) leaves its intent for the reconciler: run it, as an admin or
        # the next server start does, and the log then has what Cloud Control did.
        final = await cluster.recover() if left_open else {"intents": []}
        intents = await journal.open_keys()
    return {
        "killed_server": cluster.killed,
        "head": head,
        "missing_serials": missing,
        "successes_not_in_lineage": not_found,
        "successes_not_exactly_once": repeated,
        "locks_left_by_killed_server": len(held_by_killed),
        "locks_left_by_others": len(left) - len(held_by_killed),
        "locks_taken_over": taken_over,
        "locks_remaining": len(remaining),
        "intents_open_before_final_recover": left_open,
        "final_recover": [
            {k: row[k] for k in ("operation", "identifier", "result", "outcome", "serial")}
            for row in final["intents"]
        ],
        "intents_open": len(intents),
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(share * 100) - 1]


def summarize(config: SoakConfig, seconds: float, tally: Tally, checks: dict[str, Any]) -> dict:
    operations = sum(v for k, v in tally.outcomes.items())
    return {
        "config": config.__dict__,
        "seconds": round(seconds, 1),
        "operations": operations,
        "operations_per_second": round(operations / seconds, 2),
        "tool_calls": sum(len(v) for v in tally.calls.values()),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "successful_mutations": len(tally.successes),
        "ok_after_kill": tally.after_kill_ok,
        "killed_server": checks.pop("killed_server", None),
        "tools": {
            tool: {
                "calls": len(times),
                "p50_ms": round(percentile(times, 0.5) * 1000, 1),
                "p95_ms": round(percentile(times, 0.95) * 1000, 1),
            }
            for tool, times in sorted(tally.calls.items())
        },
        "checks": checks,
    }


def run_soak(config: SoakConfig, workdir: Path) -> dict[str, Any]:
    cluster = Cluster(workdir, config)
    try:
        cluster.start()
        soak = Soak(cluster)

        cpu_before, client_before = cluster.cpu_seconds(), time.process_time()

        async def main() -> tuple[float, dict[str, Any]]:
            soak.progress = asyncio.Event()
            seconds = await soak.run()
            cpu = cluster.cpu_seconds()
            cpu = {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu.items()}
            cpu["clients (this process)"] = round(time.process_time() - client_before, 1)
            cpu_used.update(cpu)
            waits = await lock_waits(cluster)
            taken = await takeover(soak)
            return seconds, {**await verify(cluster, soak.tally), **taken, "lock_waits": waits}

        cpu_used: dict[str, float] = {}
        seconds, checks = asyncio.run(main())
        result = summarize(config, seconds, soak.tally, checks)
        result["cpu_seconds"] = cpu_used
        result["load_average_after"] = round(os.getloadavg()[0], 2)
        result["lock_held_at_kill"] = soak.lock_at_kill
        result["killed_server_log_tail"] = cluster.server_log(0)[-500:]
        return result
    finally:
        cluster.stop()


# --------------------------------------------------------------------------- make bench


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ccstate-soak-") as tmp:
        result = run_soak(SoakConfig(), Path(tmp))
    result.pop("killed_server_log_tail", None)
    return result


def markdown(result: dict[str, Any]) -> str:
    config = result["config"]
    checks = result["checks"]
    cpu = result.get("cpu_seconds", {})
    waits = checks.get("lock_waits", {})
    at_kill = set(checks.get("locks_at_kill", []))
    settled = checks.get("recover_settled", [])
    recovered = ", ".join(
        f"{r['operation']} of {r['identifier']}: {r['result']}"
        + (f" {r['outcome']} at serial {r['serial']}" if r.get("serial") else "")
        for r in settled
        if r["identifier"] in at_kill
    )
    others = Counter(r["result"] for r in settled if r["identifier"] not in at_kill)
    final = Counter(r["result"] for r in checks.get("final_recover", []))
    lines = [
        f"{config['servers']} `ccstate serve --transport http` processes on one S3 backend "
        f"(the sandbox's moto: S3, DynamoDB, KMS; Cloud Control), {config['clients']} MCP "
        f"clients (the SDK's streamable HTTP client, one operator token each), "
        f"{config['ops_per_client']} operations per client (reads, creates, updates, deletes, "
        f"drift checks; a create/update is 5 tool calls, a delete 4), S3 buckets. Server 0 was "
        f"killed with SIGKILL after {int(config['kill_after'] * 100)} % of the operations, "
        f"while it held a resource lock; lock lease {config['lease_seconds']} s (the product's "
        "default is 60 s). `ccstate recover` was started at the kill, beside the soak. "
        "SECURITY_SCANNING=disabled: a bucket with only a name fails 6 checkov checks, which "
        "an approver would have to accept.",
        "",
        f"- **{result['operations']} operations ({result['tool_calls']} tool calls) in "
        f"{result['seconds']} s: {result['operations_per_second']} operations/s**; "
        f"{result['successful_mutations']} successful mutations; {result['ok_after_kill']} "
        "operations succeeded after the kill.",
        f"- Outcomes: {', '.join(f'{k} {v}' for k, v in result['outcomes'].items())} "
        "(server_gone: the operation in flight on the killed server; its client moved on to "
        "another server).",
        f"- Checks: head serial {checks['head']}, missing serials "
        f"{len(checks['missing_serials'])}, successes not in the lineage "
        f"{len(checks['successes_not_in_lineage'])}, not exactly once "
        f"{len(checks['successes_not_exactly_once'])}; changes left open (intents) at the "
        f"end {checks.get('intents_open_before_final_recover', '?')}, after a final "
        f"`ccstate recover` {checks.get('intents_open', '?')}; locks remaining "
        f"{checks['locks_remaining']}.",
        f"- The kill: server 0 held {len(at_kill)} lock(s). `ccstate recover` waited out the "
        f"lease, took over {len(checks.get('taken_over_by_recover', []))} of them and recorded "
        f"what their changes did ({recovered or 'none had an intent open'}), in "
        f"{checks.get('recover_seconds', '?')} s while the other servers served; it also "
        f"looked at the live servers' changes in flight then "
        f"({', '.join(f'{k} {v}' for k, v in others.items()) or 'none'}). "
        f"{checks['locks_left_by_killed_server']} lock(s) taken before their intent was "
        "written were taken over after the lease by the next acquire. The final `ccstate "
        f"recover`: {', '.join(f'{k} {v}' for k, v in final.items()) or 'nothing to do'}.",
        f"- Lock acquisitions on the surviving servers: {waits.get('acquired', '?')}, mean "
        f"{waits.get('mean_ms', '?')} ms (`ccstate_lock_wait_seconds`). Clients work on their "
        "own resources; an acquisition is three DynamoDB requests (the lock, a fencing "
        "token, binding it), conditional writes that moto serves one at a time.",
        "- CPU seconds used during the run: "
        + ", ".join(f"{k} {v}" for k, v in cpu.items())
        + f" (the killed server's not counted); load average {result.get('load_average_after')}"
        f" at the end. That is {sum(cpu.values()) / result['operations']:.2f} CPU seconds per "
        "operation at least: on two otherwise idle cores the run would take about "
        f"{sum(cpu.values()) / 2 / 60:.1f} minutes (an estimate from the CPU used, not a "
        "measured run).",
        "",
        "| tool | calls | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
    ]
    for tool, row in result["tools"].items():
        lines.append(f"| {tool} | {row['calls']} | {row['p50_ms']} | {row['p95_ms']} |")
    lines += ["", WHERE_THE_TIME_GOES]
    return "\n".join(lines)


WHERE_THE_TIME_GOES = """\
Where an operation's time went, from py-spy profiles (`--gil`) of every process of a 3 x 20 x 4
round (2026-11-30, before the changes of this section): the sandbox (moto and the fake Cloud
Control in one Python process) used the most CPU, servers next, clients least; everything is
CPU-bound on 2 shared cores, so latency is mostly waiting for a core. Found and fixed:

- **Token chain reads**: issuing a child token read its parent and the parent's chain twice
  (inspect, then validate), right after the tool had validated it: a create's chain made 24
  object reads. The tool now hands the validated parent to `TokenService.issue`: 9 reads.
- **Token clean-up was quadratic**: every 25 issues each server listed every token record and
  read each one not yet expired (all of them, in a run shorter than the 15-minute TTL): 16% of
  a server's CPU after 80 operations and growing with every token. A clean-up that read every
  record now knows when the next record can expire and skips until then.
- **`ListObjectVersions` per in-flight serial**: the store asks whether a serial handed out
  but not yet written was ever written (a deleted newest commit). moto answers
  `ListObjectVersions` by copying every version in the bucket: 28% of moto's CPU at 400
  operations, growing with the bucket. It is now one `HeadObject` (a deleted key answers 404
  with `x-amz-delete-marker: true`).
- **Checkov**: one long-lived worker per server, scans one at a time, 30-40 ms warm; it was
  started on the first scan (about 2 s of CPU for checkov's import). Servers now start it in
  the background at start-up.

Before these changes, the last round (120 operations, load average 15.7) made 1.46
operations/s; a 2,000-operation round with them but a 5 s lease made 2.82/s at a load average
of 9 to 20, and there a live server's heartbeat, starved of CPU, let leases lapse: the
reconciler took those locks over and recorded the changes, whose clients had been told the
outcome was unknown (exactly once held). The lease here is 15 s.

What is left per operation: each tool call's token check reads `users.json` once (revocation
takes effect on the next request; nothing is cached), and the sandbox's Cloud Control reads a
bucket through a dozen moto S3 calls (about a fifth of moto's CPU; real Cloud Control spends
network time there instead)."""


if __name__ == "__main__":
    servers, clients, ops = (int(a) for a in (sys.argv[1:4] or (3, 20, 100)))
    with tempfile.TemporaryDirectory(prefix="ccstate-soak-") as tmp:
        outcome = run_soak(SoakConfig(servers, clients, ops), Path(tmp))
    print(json.dumps(outcome, indent=1))
