"""DriftDetector over the real state store (in memory) and the bundled schemas.

The cloud is the one thing replaced here: ``ScriptedCloud`` is a stand-in for AWS that serves
resource models from a dict and can be told to refuse or to lose resources, which lets these
tests reach situations (half the credentials refused, ten thousand resources) cheaply. The
same behaviours are checked against the sandbox in tests/integration/drift.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import jsonpatch
import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.backends.schemas import CloudFormationSchemaProvider
from ccstate.service.changes.redaction import is_redacted
from ccstate.service.drift.detect import AUTH_ABORT_MIN_CHECKS, DriftDetector
from ccstate.service.errors import AccessDenied, BackendError, NotFound
from ccstate.service.ports import ResourceDescription
from ccstate.service.state.model import CommitMeta, DriftStatus, Principal, ResourceChange
from ccstate.service.state.store import StateStore

QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"


class ScriptedCloud:
    """Cloud Control's GetResource over a dict; counts calls and concurrent requests."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.refuse: set[str] = set()
        self.broken: set[str] = set()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_tasks = 0

    async def get_resource(self, type_name: str, identifier: str) -> ResourceDescription:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_tasks = max(self.max_tasks, len(asyncio.all_tasks()))
        try:
            await asyncio.sleep(0)
            if identifier in self.refuse or "*" in self.refuse:
                raise AccessDenied(f"GetResource {identifier}: the security token is invalid.")
            if identifier in self.broken:
                raise BackendError(f"GetResource {identifier}: service unavailable.")
            if identifier not in self.models:
                raise NotFound(f"{type_name} {identifier} does not exist.")
            return ResourceDescription(
                type_name, identifier, copy.deepcopy(self.models[identifier])
            )
        finally:
            self.in_flight -= 1

    async def update(self, identifier: str, patch: list[dict[str, Any]]) -> None:
        self.models[identifier] = jsonpatch.apply_patch(self.models[identifier], patch)


def meta(**kw: Any) -> CommitMeta:
    return CommitMeta(principal=Principal(user="alice"), explanation="test", **kw)


def queue_model(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "QueueName": name,
        "QueueUrl": f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}",
        "Arn": f"arn:aws:sqs:us-east-1:123456789012:{name}",
        "VisibilityTimeout": 30,
        **extra,
    }


@pytest.fixture
def cloud() -> ScriptedCloud:
    return ScriptedCloud()


@pytest.fixture
def store() -> StateStore:
    return StateStore(MemoryObjectStore(), "default")


@pytest.fixture
def detector(cloud: ScriptedCloud, store: StateStore) -> DriftDetector:
    return DriftDetector(
        cloud,  # type: ignore[arg-type]
        CloudFormationSchemaProvider(offline=True),
        store,
        concurrency=4,
    )


async def track(store: StateStore, cloud: ScriptedCloud, *names: str, **extra: Any) -> None:
    """Create the queues in the cloud and record the same properties in state."""
    changes = []
    for name in names:
        cloud.models[name] = queue_model(name, **extra)
        changes.append(
            ResourceChange(
                identifier=name,
                resource_type=QUEUE,
                operation="create",
                properties_after=queue_model(name, **extra),
            )
        )
    await store.commit(changes, meta())


async def test_each_status_is_reported(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "same", "changed", "gone", "refused", "broken")
    cloud.models["changed"]["VisibilityTimeout"] = 99
    del cloud.models["gone"]
    cloud.refuse.add("refused")
    cloud.broken.add("broken")
    report = await detector.scan([*(await store.current()).resources, "unknown"])
    status = {r.identifier: r.status for r in report.results}
    assert status == {
        "same": "IN_SYNC",
        "changed": "MODIFIED",
        "gone": "DELETED",
        "refused": "FAILED",
        "broken": "FAILED",
        "unknown": "NOT_CHECKED",
    }
    changed = next(r for r in report.results if r.identifier == "changed")
    assert [(d.path, d.expected, d.actual) for d in changed.differences] == [
        ("/VisibilityTimeout", 30, 99)
    ]
    assert changed.remediation is not None and changed.remediation.remediable
    refused = next(r for r in report.results if r.identifier == "refused")
    assert refused.error is not None and refused.error["error"] == "access_denied"
    assert report.counts["FAILED"] == 2
    assert report.stopped_reason is None


async def test_bad_credentials_stop_the_scan_and_never_mark_deleted(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    names = [f"q{i:03d}" for i in range(200)]
    await track(store, cloud, *names)
    cloud.refuse.add("*")
    report = await detector.scan()
    assert {r.status for r in report.results} == {"FAILED"}
    assert len(report.results) == 200
    assert report.stopped_reason and "refused" in report.stopped_reason
    # Stopped after the minimum sample (plus the checks already in flight), not after 200.
    assert cloud.calls <= AUTH_ABORT_MIN_CHECKS + detector.concurrency
    assert all(r.error and r.error["error"] == "access_denied" for r in report.results)


async def test_a_few_refusals_do_not_stop_the_scan(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    names = [f"q{i:02d}" for i in range(40)]
    await track(store, cloud, *names)
    cloud.refuse.update(names[:5])  # refusals first: the worst case for an early verdict
    report = await detector.scan()
    assert report.stopped_reason is None
    assert report.counts == {
        "IN_SYNC": 35,
        "MODIFIED": 0,
        "DELETED": 0,
        "NOT_CHECKED": 0,
        "FAILED": 5,
    }


async def test_scan_of_ten_thousand_resources_keeps_a_fixed_pool(
    cloud: ScriptedCloud, store: StateStore
) -> None:
    names = [f"q{i:05d}" for i in range(10_000)]
    await track(store, cloud, *names)
    for name in names[::1000]:
        cloud.models[name]["VisibilityTimeout"] = 1
    progress: list[tuple[int, int]] = []
    detector = DriftDetector(
        cloud,  # type: ignore[arg-type]
        CloudFormationSchemaProvider(offline=True),
        store,
        concurrency=16,
    )
    report = await detector.scan(on_progress=lambda done, total: progress.append((done, total)))
    assert report.counts["MODIFIED"] == 10
    assert report.counts["IN_SYNC"] == 9_990
    assert cloud.max_in_flight <= 16
    assert cloud.max_tasks <= 16 + 2  # the workers, the test's task, nothing per resource
    assert progress[-1] == (10_000, 10_000)
    assert len(progress) == 10_000


async def test_record_writes_one_commit_with_a_check_per_resource(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "a", "b", "c", "d")
    cloud.models["b"]["VisibilityTimeout"] = 5
    del cloud.models["c"]
    cloud.broken.add("d")
    before = await store.head()
    report = await detector.scan()
    commit = await detector.record(report, meta())
    assert commit is not None
    assert await store.head() == before + 1
    assert commit.kind == "drift"
    assert sorted(c.identifier for c in commit.changes) == ["a", "b", "c", "d"]
    assert {c.operation for c in commit.changes} == {"drift_check"}
    state = (await store.current()).resources
    assert state["a"].drift_status.status == "IN_SYNC"
    assert state["b"].drift_status.status == "MODIFIED"
    assert state["b"].drift_status.drift_detected
    details = state["b"].drift_status.drift_details
    assert details["differences"][0]["PropertyPath"] == "/VisibilityTimeout"
    assert details["remediation"]["patch"] == [
        {"op": "replace", "path": "/VisibilityTimeout", "value": 30}
    ]
    assert state["c"].drift_status.status == "DELETED"  # still in state: never dropped
    assert state["d"].drift_status.status is None  # a failed check keeps the last status
    history = await store.history("d")
    assert history[-1].operation == "drift_check"
    assert history[-1].outcome == "FAILED"


async def test_results_for_resources_changed_since_the_scan_are_not_recorded(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "a", "b")
    report = await detector.scan()
    update = ResourceChange(
        identifier="a",
        resource_type=QUEUE,
        operation="update",
        properties_after=queue_model("a", VisibilityTimeout=60),
    )
    await store.commit([update], meta())
    commit = await detector.record(report, meta())
    assert commit is not None
    assert [c.identifier for c in commit.changes] == ["b"]


async def test_refresh_accepts_the_cloud_state(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "a")
    await store.commit(
        [
            ResourceChange(
                identifier="a",
                resource_type=QUEUE,
                operation="drift_check",
                drift_status=DriftStatus(status="MODIFIED", drift_detected=True),
            )
        ],
        meta(),
    )
    cloud.models["a"]["VisibilityTimeout"] = 45
    cloud.models["a"]["Tags"] = [{"Key": "api_key", "Value": "ghp_" + "x" * 36}]
    commit = await detector.refresh("a", meta())
    change = commit.changes[0]
    assert change.operation == "refresh"
    assert change.properties_before is not None
    assert change.properties_before["VisibilityTimeout"] == 30
    resource = await store.get_resource("a")
    assert resource is not None
    props = resource.current_properties
    assert props["VisibilityTimeout"] == 45
    assert "Arn" not in props  # read-only
    assert props["QueueUrl"].endswith("/a")  # the primary identifier stays
    assert is_redacted(props["Tags"][0]["Value"])  # secret-looking values are fingerprinted
    assert resource.drift_status.status == "IN_SYNC"
    assert (await detector.check("a")).status == "IN_SYNC"


async def test_refresh_of_a_deleted_resource_says_what_to_do(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "a")
    del cloud.models["a"]
    with pytest.raises(NotFound) as info:
        await detector.refresh("a", meta())
    assert "no longer exists" in info.value.message
    assert "orget" in info.value.next_step


async def test_remediation_plan_restores_the_recorded_state(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "a", Tags=[{"Key": "team", "Value": "core"}])
    cloud.models["a"]["VisibilityTimeout"] = 7
    cloud.models["a"]["Tags"].append({"Key": "rogue", "Value": "1"})
    cloud.models["a"]["QueueName"] = "renamed"  # create-only: cannot be fixed by an update
    plan = await detector.plan_remediation("a")
    assert plan.remediable and not plan.complete
    assert [b.path for b in plan.blocked] == ["/QueueName"]
    await cloud.update("a", plan.patch)
    after = await detector.check("a")
    assert [d.path for d in after.differences] == ["/QueueName"]


async def test_remediation_of_a_deleted_or_refused_resource(
    detector: DriftDetector, cloud: ScriptedCloud, store: StateStore
) -> None:
    await track(store, cloud, "gone", "refused", "fine")
    del cloud.models["gone"]
    cloud.refuse.add("refused")
    plan = await detector.plan_remediation("gone")
    assert not plan.remediable and "no longer exists" in plan.reason
    with pytest.raises(AccessDenied):
        await detector.plan_remediation("refused")
    fine = await detector.plan_remediation("fine")
    assert not fine.remediable and fine.patch == []


async def test_check_of_an_unknown_resource_is_not_found(detector: DriftDetector) -> None:
    with pytest.raises(NotFound) as info:
        await detector.check("nope")
    assert info.value.next_step


async def test_user_rules_change_what_is_reported(cloud: ScriptedCloud, store: StateStore) -> None:
    await track(store, cloud, "a")
    cloud.models["a"]["VisibilityTimeout"] = 1
    cloud.models["a"]["DelaySeconds"] = 5
    detector = DriftDetector(
        cloud,  # type: ignore[arg-type]
        CloudFormationSchemaProvider(offline=True),
        store,
        severity_rules=[
            {"resource_type": QUEUE, "path": "/VisibilityTimeout", "severity": "critical"},
            {"path": "/DelaySeconds", "severity": "high", "report_added": True},
        ],
    )
    result = await detector.check("a")
    assert {(d.path, d.severity) for d in result.differences} == {
        ("/VisibilityTimeout", "critical"),
        ("/DelaySeconds", "high"),
    }
    assert result.max_severity == "critical"
