"""Resource provider schemas: CloudFormation ``DescribeType``, cached on disk, with an offline
fallback on the schemas the ``cfn-lint`` package ships.

Lookup order: memory, then a fresh disk cache file, then ``DescribeType`` (written to the disk
cache), then the bundled cfn-lint schema. A bundled schema is kept in memory only, so a later
run that can reach CloudFormation still fetches and caches the live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ccstate.service import errors
from ccstate.service.changes.schema import ResourceSchema

log = logging.getLogger(__name__)

TYPE_NAME = re.compile(r"^[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}::[A-Za-z0-9]{2,64}$")
DEFAULT_TTL_SECONDS = 24 * 3600
BUNDLED_REGION = "us-east-1"


def default_cache_dir() -> Path:
    return Path.home() / ".aws" / "ccapi-mcp-server" / "schemas"


# --------------------------------------------------------------------------- bundled schemas


def _cfnlint_schema_root() -> Path | None:
    """Where cfn-lint keeps its data, found without importing it: cfn-lint's public API
    (``cfnlint.schema.PROVIDER_SCHEMA_MANAGER``) costs 1.5 s of import, paid by the sandbox's
    start and every offline lookup. tests/unit/test_schema.py checks that this reading gives
    what the public API gives (docs/decisions.md, "Libraries")."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


@functools.cache
def _bundled_index() -> dict[str, Path]:
    """type name -> schema file, for both cfn-lint layouts.

    cfn-lint >= 1.4x: ``providers/<region>.json`` maps type names to ``resources/<hash>.json``.
    Older 1.x: ``providers/us_east_1/aws-s3-bucket.json`` holds the schema itself.
    """
    root = _cfnlint_schema_root()
    if root is None:
        return {}
    index_file = root / "providers" / f"{BUNDLED_REGION}.json"
    if index_file.is_file():
        mapping = json.loads(index_file.read_text(encoding="utf-8"))
        return {name: root / "resources" / f"{digest}.json" for name, digest in mapping.items()}
    folder = root / "providers" / BUNDLED_REGION.replace("-", "_")
    found: dict[str, Path] = {}
    for path in folder.glob("aws-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            found[json.loads(path.read_text(encoding="utf-8"))["typeName"]] = path
    return found


def bundled_type_names() -> frozenset[str]:
    """Every resource type the bundled cfn-lint schemas know (about 1,800)."""
    return frozenset(_bundled_index())


@functools.cache
def bundled_schema_document(type_name: str) -> dict[str, Any] | None:
    """The provider schema document cfn-lint ships for ``type_name``, or None when unknown."""
    path = _bundled_index().get(type_name)
    if path is None or not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) and doc.get("typeName") == type_name else None


# --------------------------------------------------------------------------- disk cache


def _cache_file(cache_dir: Path, type_name: str) -> Path:
    return cache_dir / (type_name.replace("::", "-").lower() + ".json")


def _read_fresh(path: Path, ttl_seconds: float) -> dict[str, Any] | None:
    try:
        if time.time() - path.stat().st_mtime > ttl_seconds:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "typeName" in doc else None


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """Atomic write: a temp file (0600) in the same 0700 directory, then rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- the provider


class CloudFormationSchemaProvider:
    """``SchemaProvider`` over CloudFormation ``DescribeType``, with disk and memory caches.

    ``endpoint_url`` defaults to ``AWS_ENDPOINT_URL_CLOUDFORMATION`` / ``AWS_ENDPOINT_URL`` (the
    AWS SDK reads them itself; we pass nothing). ``offline=True`` never calls AWS.
    """

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        region: str | None = None,
        endpoint_url: str | None = None,
        offline: bool = False,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._cache_dir = cache_dir or default_cache_dir()
        self._ttl = ttl_seconds
        self._region = region
        self._endpoint_url = endpoint_url
        self._offline = offline
        self._timeout = timeout_seconds
        self._memory: dict[str, ResourceSchema] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get_schema(self, type_name: str) -> ResourceSchema:
        if not TYPE_NAME.match(type_name):
            raise errors.InvalidInput(
                f"'{type_name}' is not a resource type name.",
                next_step="Use the form Service::Product::Type, e.g. AWS::S3::Bucket.",
            )
        cached = self._memory.get(type_name)
        if cached is not None:
            return cached
        async with self._locks.setdefault(type_name, asyncio.Lock()):
            if type_name not in self._memory:
                self._memory[type_name] = ResourceSchema.from_document(await self._load(type_name))
        return self._memory[type_name]

    async def _load(self, type_name: str) -> dict[str, Any]:
        path = _cache_file(self._cache_dir, type_name)
        doc = _read_fresh(path, self._ttl)
        if doc is not None:
            return doc
        if not self._offline:
            doc = await self._describe_type(type_name)
            if doc is not None:
                try:
                    _write_private(path, doc)
                except OSError as exc:
                    log.warning("could not cache the schema of %s at %s: %s", type_name, path, exc)
                return doc
        doc = bundled_schema_document(type_name)
        if doc is None:
            raise errors.NotFound(
                f"Resource type '{type_name}' is not known to CloudFormation.",
                next_step="Check the spelling (e.g. AWS::S3::Bucket) or list types with "
                "'aws cloudformation list-types --visibility PUBLIC'.",
            )
        return doc

    async def _describe_type(self, type_name: str) -> dict[str, Any] | None:
        """The live schema, or None (logged) when CloudFormation cannot give it."""
        try:
            return await asyncio.wait_for(self._call_describe_type(type_name), self._timeout)
        except Exception as exc:  # any failure means: fall back to the bundled schema
            log.info("DescribeType %s failed (%s); using the bundled schema", type_name, exc)
            return None

    async def _call_describe_type(self, type_name: str) -> dict[str, Any] | None:
        import aioboto3
        from botocore.config import Config
        from ccstate.backends.aws import env_region

        session = aioboto3.Session()
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3)
        kwargs: dict[str, Any] = {"config": config}
        if region := env_region(self._region):
            kwargs["region_name"] = region
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        async with session.client("cloudformation", **kwargs) as cfn:
            answer = await cfn.describe_type(Type="RESOURCE", TypeName=type_name)
        doc = json.loads(answer.get("Schema") or "null")
        if not isinstance(doc, dict) or doc.get("typeName") != type_name:
            log.info("DescribeType %s returned no usable schema", type_name)
            return None
        return doc
