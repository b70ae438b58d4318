"""Graph scenario: the cost of keeping the dependency graph current, per commit, by state size.

A state of N resources in groups of five that reference each other as real stacks do: a KMS key,
a bucket encrypted with it, a role whose inline policy (a JSON string) names the bucket's objects
and the key, a function run by the role with the queue's URL in its environment, and a queue
encrypted with the key. Each role's policy also names another group's key, and queues switch
keys between versions, so groups are chained. The graph is built once from the state (timed),
then one-change commits (an updated bucket, role, function or queue, picked at random; some
change what they reference) are applied to the state view and the graph follows them with
``StateGraph.apply_commit``; only that call is timed. Sizes are measured in alternating rounds.

Goal (issue 14): update cost per commit at 10,000 resources <= 2 x at 100, by median.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
from typing import Any

from ccstate.backends.schemas import bundled_schema_document
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.graph.state import SchemaCache, StateGraph
from ccstate.service.state.model import Commit, ResourceChange
from ccstate.service.state.replay import StateView, apply_commit

NAME = "graph"
TITLE = "Dependency graph: update cost per commit by state size"
SIZES = (100, 1_000, 10_000)
GROUP = 5
COMMITS_PER_ROUND = 200
ROUNDS = 5
GOAL_RATIO = 2.0
ACCOUNT = "123456789012"
TYPES = (
    "AWS::KMS::Key",
    "AWS::S3::Bucket",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
    "AWS::SQS::Queue",
)


def key_id(g: int) -> str:
    return f"{g:08x}-0000-4000-8000-000000000000"


def key_arn(g: int) -> str:
    return f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id(g)}"


def queue_url(g: int) -> str:
    return f"http://127.0.0.1:5000/{ACCOUNT}/queue-{g}"


def group_resources(g: int, groups: int, version: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
    """identifier -> (type, properties) of group ``g``; ``version`` varies what they name."""
    other = (g + 1 + version) % groups
    bucket, role, function = f"bucket-{g}", f"role-{g}", f"function-{g}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn(g)},
            {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": key_arn(other)},
        ],
    }
    return {
        key_id(g): ("AWS::KMS::Key", {"KeyId": key_id(g), "Arn": key_arn(g), "Enabled": True}),
        bucket: (
            "AWS::S3::Bucket",
            {
                "BucketName": bucket,
                "Arn": f"arn:aws:s3:::{bucket}",
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"KMSMasterKeyID": key_arn(g)}}
                    ]
                },
                "Tags": [{"Key": "version", "Value": str(version)}],
            },
        ),
        role: (
            "AWS::IAM::Role",
            {
                "RoleName": role,
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "Policies": [{"PolicyName": "p", "PolicyDocument": json.dumps(policy)}],
            },
        ),
        function: (
            "AWS::Lambda::Function",
            {
                "FunctionName": function,
                "Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}",
                "Role": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "Environment": {"Variables": {"QUEUE_URL": queue_url(g), "VERSION": str(version)}},
            },
        ),
        queue_url(g): (
            "AWS::SQS::Queue",
            {
                "QueueUrl": queue_url(g),
                "Arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:queue-{g}",
                "KmsMasterKeyId": key_id(g if version % 2 == 0 else other),
            },
        ),
    }


def schemas() -> SchemaCache:
    cache = SchemaCache()
    for type_name in TYPES:
        doc = bundled_schema_document(type_name)
        if doc is not None:
            cache.add(ResourceSchema.from_document(doc))
    return cache


def change(identifier: str, type_name: str, props: dict[str, Any]) -> ResourceChange:
    return ResourceChange(
        identifier=identifier, resource_type=type_name, operation="update", properties_after=props
    )


def state_of(size: int) -> StateView:
    groups = size // GROUP
    view = StateView()
    changes = [
        change(identifier, type_name, props)
        for g in range(groups)
        for identifier, (type_name, props) in group_resources(g, groups).items()
    ]
    apply_commit(
        view, Commit(serial=1, parent=0, lineage="bench", committed_at="t", changes=changes)
    )
    return view


class Sized:
    """One size's state view and graph, advanced commit by commit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.groups = size // GROUP
        self.view = state_of(size)
        self.follower = StateGraph(schemas())
        start = time.perf_counter()
        self.follower.rebuild(self.view.resources)
        self.build_ms = (time.perf_counter() - start) * 1000
        self.edges = len(self.follower.graph.edges())
        self.random = random.Random(size)

    def one_commit(self) -> float:
        g = self.random.randrange(self.groups)
        version = self.random.randrange(1, 4)
        resources = group_resources(g, self.groups, version)
        identifier = self.random.choice(list(resources)[1:])  # bucket, role, function or queue
        type_name, props = resources[identifier]
        commit = Commit(
            serial=self.view.serial + 1,
            parent=self.view.serial,
            lineage="bench",
            committed_at="t",
            changes=[change(identifier, type_name, props)],
        )
        apply_commit(self.view, commit)
        start = time.perf_counter()
        self.follower.apply_commit(commit, self.view.resources)
        return (time.perf_counter() - start) * 1000


def measure(sizes: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    states = {size: Sized(size) for size in sizes}
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(ROUNDS):
        for size, state in states.items():
            gc.collect()
            samples[size] += [state.one_commit() for _ in range(COMMITS_PER_ROUND)]
    results = {}
    for size, state in states.items():
        times = samples[size]
        results[str(size)] = {
            "resources": size,
            "edges": state.edges,
            "build_ms": round(state.build_ms, 1),
            "update_ms_median": round(statistics.median(times), 4),
            "update_ms_p95": round(_p95(times), 4),
            "update_ms_mean": round(statistics.fmean(times), 4),
            "commits": len(times),
        }
    return results


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    results = measure(sizes)
    small, large = results[str(min(sizes))], results[str(max(sizes))]
    ratio = large["update_ms_median"] / small["update_ms_median"]
    return {
        "description": f"Groups of {GROUP} related resources (key, bucket, role with a JSON "
        "policy, function, queue), chained across groups; schemas from cfn-lint. "
        f"{COMMITS_PER_ROUND * ROUNDS} one-resource commits per size in {ROUNDS} alternating "
        "rounds; timed: `StateGraph.apply_commit` only (the state view is advanced untimed). "
        "Build: `StateGraph.rebuild` from the whole state once.",
        "sizes": results,
        "goal": {
            "statement": f"update median at {max(sizes):,} resources <= {GOAL_RATIO:g} x at "
            f"{min(sizes):,}",
            "ratio": round(ratio, 2),
            "limit": GOAL_RATIO,
            "met": ratio <= GOAL_RATIO,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    goal = result["goal"]
    lines = [
        result["description"],
        "",
        f"**Goal**: {goal['statement']}. **Measured ratio: {goal['ratio']}x — "
        f"{'met' if goal['met'] else 'NOT met'}.**",
        "",
        "| resources | edges | build ms | update median ms | update p95 ms | update mean ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"].values():
        lines.append(
            f"| {row['resources']:,} | {row['edges']:,} | {row['build_ms']} "
            f"| {row['update_ms_median']} | {row['update_ms_p95']} | {row['update_ms_mean']} |"
        )
    return "\n".join(lines)
