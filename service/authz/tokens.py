"""Execution tokens: the chain that authorizes every change, stored in the shared backend.

A FAILED scan issues a ``scan_findings`` token, which authorizes nothing until a person accepts
the findings: then a scanned token is issued under it. A delete explained the AWS Labs way
(``explain(content=..., operation="delete")``) starts at its explained token, bound to the
principal and the resource. ``environment`` tokens (check_environment_variables) stand outside
the chain: they only show that step came first. Every change token is bound to its region.

credentials -> generated_code -> explained -> scanned; the scanned token executes one change,
once. A token is 256 random bits handed to the caller; the backend stores only its sha256, at
``<workspace>/tokens/issued/<hash>.json``, so every server sharing the backend accepts it and a
leaked state bucket leaks no usable token. The exact properties or patch a token authorizes
travel with the record, sealed with a key derived from the token itself (AES-256-GCM): nobody
without the token can read them, and nobody can swap them. Single use is a write-once marker
``<workspace>/tokens/consumed/<hash of the generated_code ancestor>.json`` naming the token
that used it — atomic across processes and machines, and one prepared change runs once.

Each record also lists the hashes of its ancestors, and the seal authenticates the whole
record (type, principal, bindings, ancestors, expiry) with the token-derived key, so the
mutation checks its chain from the final record alone: one read, then the write-once markers
(``check_execution`` + ``consume_checked``). Records written before ancestors were listed are
still accepted: their chain is walked as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from ccstate.service.authz import sealing
from ccstate.service.changes.scanning import ScanResult
from ccstate.service.errors import CcstateError, InvalidInput, StateCorrupt, TokenError
from ccstate.service.names import validate_workspace
from ccstate.service.ports import Clock, ObjectStore, SystemClock
from ccstate.service.state.model import canonical_json, sha256_hex

log = logging.getLogger(__name__)

TokenType = Literal[
    "environment",
    "credentials",
    "generated_code",
    "explained",
    "scan_findings",
    "scanned",
    "stack_plan",
]
RECORD_FORMAT = "ccstate.token/1"
# Each type's possible parent types (None: a root): the order of the chain. An explained token
# is a root only for a delete explained from content.
PARENT_TYPES: dict[str, tuple[str | None, ...]] = {
    "environment": (None,),
    "credentials": (None,),
    "generated_code": ("credentials",),
    "explained": ("generated_code", None),
    "scan_findings": ("explained",),
    "scanned": ("explained", "scan_findings"),
    # A stack's whole plan, explained and scanned at once: a root, used once when the stack
    # operation starts; its steps run under it in-process (service/stacks/authority.py).
    "stack_plan": (None,),
}
STACK_OPERATIONS = frozenset({"create-stack", "update-stack", "destroy-stack"})
MAX_CHAIN = 6
OPERATIONS = frozenset({"create", "update", "delete"})
CLEANUP_EVERY = 25  # issues between two opportunistic cleanups
CLEANUP_BATCH = 20  # expired tokens removed per cleanup, at most
CLEANUP_GRACE = timedelta(seconds=60)  # never race a consume that is in flight
_RESTART = "Start again with ${prepare}"
PARSED_KEPT = 2048  # parsed token records kept in memory (a few chains per change in flight)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def recorded_token_id(token: str) -> str:
    """How a used execution token appears in the state and in tool results: its SHA-256.

    A stable key for the lineage entry it produced (rollback by token, audit), while a reader of
    the state learns nothing that could unseal a token record, even an old S3 object version."""
    return "sha256:" + token_hash(token)


def payload_digest(payload: Any) -> str:
    """sha256 of the canonical JSON of the exact properties or patch a token authorizes."""
    return sha256_hex(canonical_json(payload))


@dataclass(frozen=True)
class TokenPrincipal:
    """Who a token was issued to: the AWS caller ARN and, on a shared server, the user."""

    arn: str
    user: str | None = None

    def describe(self) -> str:
        return f"{self.user} ({self.arn})" if self.user else self.arn


@dataclass(frozen=True)
class TokenRecord:
    """What the backend stores about a token (never the token itself)."""

    token_hash: str
    type: str
    principal: TokenPrincipal
    issued_at: datetime
    expires_at: datetime
    parent_hash: str | None = None
    operation: str | None = None
    resource_type: str | None = None
    identifier: str | None = None
    payload_digest: str | None = None
    explanation: str | None = None
    user_intent: str | None = None
    scan: ScanResult | None = None
    sealed_payload: str | None = None
    region: str | None = None  # where the change runs
    # type -> token hash of every ancestor; None on records written before it was kept.
    ancestors: dict[str, str] | None = None
    # Filled by validate()/inspect(), which know the token: the properties or patch authorized.
    payload: Any = field(default=None, compare=False)

    def to_json(self) -> bytes:
        return json.dumps(self.stored_fields(), sort_keys=True).encode()

    def stored_fields(self) -> dict[str, Any]:
        """What ``to_json`` stores, as JSON values (the seal authenticates these)."""
        # Field by field, not asdict(): that deep-copies the payload only to drop it.
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "payload"}
        body["principal"] = asdict(self.principal)
        body["format"] = RECORD_FORMAT
        body["issued_at"] = self.issued_at.isoformat()
        body["expires_at"] = self.expires_at.isoformat()
        body["scan"] = self.scan.to_dict() if self.scan else None
        return body

    @classmethod
    def from_json(cls, raw: bytes) -> TokenRecord:
        body = json.loads(raw)
        body.pop("format", None)
        body["principal"] = TokenPrincipal(**body["principal"])
        body["issued_at"] = datetime.fromisoformat(body["issued_at"])
        body["expires_at"] = datetime.fromisoformat(body["expires_at"])
        body["scan"] = ScanResult.from_dict(body["scan"]) if body.get("scan") else None
        return cls(**body)

    def checkov_results(self) -> dict[str, Any] | None:
        """The scan as the lineage entry records it ('not scanned' when scanning was off)."""
        return self.scan.checkov_results() if self.scan else None


@dataclass
class _Parsed:
    """A record as parsed from ``body``; ``opened``: its payload, unsealed (canonical JSON)."""

    body: bytes
    record: TokenRecord
    opened: bytes | None = None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: TokenRecord

    @property
    def expires_at(self) -> datetime:
        return self.record.expires_at


class TokenService:
    def __init__(
        self,
        objects: ObjectStore,
        workspace: str,
        *,
        clock: Clock | None = None,
        ttl_seconds: float = 900,
    ) -> None:
        self._objects = objects
        self._prefix = f"{validate_workspace(workspace)}/tokens"
        self._clock = clock or SystemClock()
        self._ttl = timedelta(seconds=ttl_seconds)
        self._issued_since_cleanup = 0
        # No record can be old enough to remove before this (set by a cleanup that read them
        # all): until then a cleanup would list and read every record for nothing.
        self._cleanup_not_before: datetime | None = None
        # Parsed records by hash, with the exact stored body they came from: a record is read
        # from the backend every time (it may have been consumed, edited or removed), but the
        # same bytes are not parsed, nor their payload unsealed, twice.
        self._parsed: OrderedDict[str, _Parsed] = OrderedDict()
        # When each record seen expires: cleanup reads only those that may have expired.
        self._expiry: dict[str, datetime] = {}

    # ----------------------------------------------------------------------- issue

    async def issue(
        self,
        kind: TokenType,
        *,
        principal: TokenPrincipal,
        parent: str | None = None,
        operation: str | None = None,
        resource_type: str | None = None,
        identifier: str | None = None,
        payload: Any = None,
        explanation: str | None = None,
        user_intent: str | None = None,
        scan: ScanResult | None = None,
        region: str | None = None,
        checked_parent: TokenRecord | None = None,
    ) -> IssuedToken:
        """Issue a token of ``kind`` under ``parent`` (the raw parent token).

        A child inherits its parent's operation, resource, region and payload; an explained
        token must carry an explanation; a scanned token needs a scan that authorizes
        execution, a scan_findings token a FAILED one. ``checked_parent``: the parent's record
        as ``validate`` returned it to the caller for the same principal a moment ago, so the
        parent and its chain are not read again.
        """
        if kind not in PARENT_TYPES:
            raise ValueError(f"unknown token type {kind!r}")
        base = await self._parent_for(kind, parent, principal, operation, checked_parent)
        now = self._clock.now()
        token = secrets.token_urlsafe(32)
        record = TokenRecord(
            token_hash=token_hash(token),
            type=kind,
            principal=principal,
            issued_at=now,
            expires_at=now + self._ttl,
            parent_hash=base.token_hash if base else None,
            explanation=base.explanation if base else None,
            user_intent=base.user_intent if base else None,
        )
        if kind == "generated_code" or (kind == "explained" and base is None):
            record = _authorize(record, operation, resource_type, identifier, payload, region)
        elif kind == "stack_plan":
            record = _stack_plan(record, operation, identifier, payload, region)
            record = replace(record, scan=scan)
        elif base is not None:
            record = _inherit(record, base)
        if kind in ("explained", "stack_plan"):
            record = _explain(record, explanation, user_intent)
        if kind == "scanned":
            record = replace(record, scan=_authorizing_scan(scan))
        if kind == "scan_findings":
            record = replace(record, scan=_failed_scan(scan))
        record = replace(record, ancestors=_ancestors_of(base))
        if record.ancestors is not None:
            record = replace(record, sealed_payload=_seal(token, record.payload, record))
        elif record.payload is not None:
            record = replace(record, sealed_payload=_seal(token, record.payload, None))
        await self._objects.put_if_absent(self._issued_key(record.token_hash), record.to_json())
        self._expiry[record.token_hash] = record.expires_at
        await self._maybe_cleanup()
        return IssuedToken(token=token, record=replace(record, payload=record.payload))

    async def _parent_for(
        self,
        kind: str,
        parent: str | None,
        principal: TokenPrincipal,
        operation: str | None,
        checked: TokenRecord | None = None,
    ) -> TokenRecord | None:
        allowed = PARENT_TYPES[kind]
        wanted = next((t for t in allowed if t is not None), None)
        if wanted is None:
            return None
        if parent is None:
            if None in allowed and operation == "delete":
                return None  # a delete explained from content: a root
            raise _refuse(
                "wrong_chain",
                f"A {kind} token needs a {wanted} token.",
                f"Pass the {wanted} token you were given.",
            )
        reuse = checked is not None and hmac.compare_digest(checked.token_hash, token_hash(parent))
        record = checked if reuse and checked is not None else await self.inspect(parent)
        if record.type not in allowed:
            raise _refuse(
                "wrong_chain",
                f"A {kind} token must come from a {' or '.join(str(t) for t in allowed if t)} "
                f"token; the token given is a {record.type} token.",
                _next_for(wanted),
            )
        if reuse:  # validated for this principal by the caller a moment ago, chain included
            _check_principal(record, principal)
            return record
        await self._check(record, expected_type=record.type, principal=principal)  # type: ignore[arg-type]
        return record

    # ----------------------------------------------------------------------- check, consume

    async def inspect(self, token: str) -> TokenRecord:
        """The record of a live, unconsumed token, payload unsealed; checks only existence."""
        record = await self._load(token)
        self._check_alive(record)
        if await self._objects.get(self._consumed_key(record.token_hash)) is not None:
            raise _already_used()
        return record

    async def validate(
        self,
        token: str,
        *,
        expected_type: TokenType,
        principal: TokenPrincipal | None = None,
        operation: str | None = None,
        resource_type: str | None = None,
        identifier: str | None = None,
        payload_digest: str | None = None,
        region: str | None = None,
    ) -> TokenRecord:
        """Check every binding of ``token``; raise ``TokenError`` naming the failed check.

        Arguments left ``None`` are not checked. The ancestors still on record are walked and
        must link up: same principal, same operation, resource, region and payload digest.
        """
        record, _ = await self._validated(
            token,
            expected_type=expected_type,
            principal=principal,
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest,
            region=region,
        )
        return record

    async def _validated(
        self,
        token: str,
        *,
        expected_type: TokenType,
        principal: TokenPrincipal | None,
        operation: str | None,
        resource_type: str | None,
        identifier: str | None,
        payload_digest: str | None,
        region: str | None = None,
    ) -> tuple[TokenRecord, list[TokenRecord]]:
        record = await self.inspect(token)
        return record, await self._check(
            record,
            expected_type=expected_type,
            principal=principal,
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest,
            region=region,
        )

    async def _check(
        self,
        record: TokenRecord,
        *,
        expected_type: TokenType,
        principal: TokenPrincipal | None,
        operation: str | None = None,
        resource_type: str | None = None,
        identifier: str | None = None,
        payload_digest: str | None = None,
        region: str | None = None,
    ) -> list[TokenRecord]:
        """Every binding of a live record (from ``inspect``); its ancestors, checked."""
        _check_type(record, expected_type)
        if principal is not None:
            _check_principal(record, principal)
        _check_binding(record, operation, resource_type, identifier)
        if region is not None:
            _check_region(record, region)
        if payload_digest is not None:
            _check_payload(record, payload_digest)
        if record.type == "scanned" and not (record.scan and record.scan.authorizes_execution):
            raise _refuse("scan_failed", "This token's security scan did not pass.", _RESTART)
        return await self._check_chain(record)

    async def consume(
        self,
        token: str,
        *,
        expected_type: TokenType = "scanned",
        principal: TokenPrincipal | None = None,
        operation: str | None = None,
        resource_type: str | None = None,
        identifier: str | None = None,
        payload_digest: str | None = None,
        region: str | None = None,
    ) -> TokenRecord:
        """Validate, then mark used; a second consume anywhere sharing the backend fails.

        The generated_code ancestor is marked used first, so one generated change executes
        once, however many explained or scanned tokens were issued from it. Once used, the
        record forgets the sealed payload: the token is recorded in the state, and a reader of
        the state must not be able to unseal the properties (secrets included) it authorized.
        """
        record, ancestors = await self._validated(
            token,
            expected_type=expected_type,
            principal=principal,
            operation=operation,
            resource_type=resource_type,
            identifier=identifier,
            payload_digest=payload_digest,
            region=region,
        )
        generated = [a.token_hash for a in ancestors if a.type == "generated_code"]
        await self._mark_consumed(record, generated)
        return record

    async def check_execution(
        self,
        token: str,
        *,
        expected_type: TokenType,
        principal: TokenPrincipal,
        operation: str,
        resource_type: str,
        identifier: str | None,
        payload_digest: str | None = None,
        chain: dict[str, str] | None = None,
        region: str | None = None,
    ) -> TokenRecord:
        """The check a mutation makes once, before it locks: every binding of the final
        token, and that the raw tokens in ``chain`` (type -> token) are its ancestors.

        One read: the record lists its ancestors and its seal authenticates all of it. Whether
        it was used already is settled by ``consume_checked``'s write-once markers.
        """
        record = await self._load(token)
        self._check_alive(record)
        _check_type(record, expected_type)
        _check_principal(record, principal)
        _check_binding(record, operation, resource_type, identifier)
        if region is not None:
            _check_region(record, region)
        if payload_digest is not None:
            _check_payload(record, payload_digest)
        if record.type == "scanned" and not (record.scan and record.scan.authorizes_execution):
            raise _refuse("scan_failed", "This token's security scan did not pass.", _RESTART)
        ancestors = await self._ancestor_hashes(record)
        in_chain = {**ancestors, record.type: record.token_hash}
        for kind, given in (chain or {}).items():
            if not given or in_chain.get(kind) != token_hash(given):
                raise _refuse(
                    "wrong_chain",
                    f"The {kind}_token given is not the one this change was prepared "
                    "and explained with: the tokens come from different chains.",
                    "Pass the tokens of one chain: the credentials_token you gave ${prepare} "
                    "and the explained_token ${explain} returned.",
                    step="pass_one_chain",
                )
        return replace(record, ancestors=ancestors)

    async def ensure_unused(self, record: TokenRecord) -> None:
        """Refuse a token whose prepared change (its generated_code ancestor) already ran or
        was given up: its siblings and descendants are used up with it."""
        generated = (await self._ancestor_hashes(record)).get("generated_code")
        for digest in (d for d in (generated, record.token_hash) if d):
            if await self._objects.get(self._consumed_key(digest)) is not None:
                raise _refuse(
                    "consumed",
                    "This prepared change was already executed or given up: its tokens are used.",
                    f"{_RESTART} to prepare the change again.",
                )

    async def consume_checked(self, record: TokenRecord) -> None:
        """Mark a record from ``check_execution`` used, once, across every server sharing the
        backend; its expiry is checked again (the lock may have been waited for)."""
        self._check_alive(record)
        generated = (record.ancestors or {}).get("generated_code")
        await self._mark_consumed(record, [generated] if generated else [])

    async def _mark_consumed(self, record: TokenRecord, generated: list[str]) -> None:
        """One write-once marker: on the generated_code ancestor, naming this token, so one
        prepared change runs once however many explained or scanned tokens were issued from
        it, and this token with it. Only a token whose generated ancestor is unknown (a legacy
        chain whose records were cleaned up) gets a marker of its own."""
        marker = json.dumps(
            {
                "consumed_at": self._clock.now().isoformat(),
                "by": record.principal.describe(),
                "token": record.token_hash,
            }
        ).encode()
        for digest in generated:
            key = self._consumed_key(digest)
            if not await self._objects.put_if_absent(key, marker):
                raise await self._consumed_by(key, record)
        if not generated:
            mine = self._consumed_key(record.token_hash)
            if not await self._objects.put_if_absent(mine, marker):
                raise _refuse(
                    "consumed",
                    "This execution token was used by another request a moment ago.",
                    f"{_RESTART} to get a new token for another change.",
                )
        await self._forget_payload(record)

    async def _consumed_by(self, key: str, record: TokenRecord) -> TokenError:
        """Why the generated change's marker exists: this token ran, or a sibling did."""
        stored = await self._objects.get(key)
        try:
            used = json.loads(stored.body).get("token") if stored is not None else None
        except (ValueError, AttributeError):
            used = None
        if used == record.token_hash:
            return _already_used()
        return _refuse(
            "consumed",
            "This change was already executed with another token issued from the "
            "same generated code: a prepared change runs once.",
            f"{_RESTART} to prepare the change again.",
        )

    async def _ancestor_hashes(self, record: TokenRecord) -> dict[str, str]:
        if record.ancestors is not None:
            return dict(record.ancestors)
        return {a.type: a.token_hash for a in await self._check_chain(record)}

    async def _forget_payload(self, record: TokenRecord) -> None:
        if record.sealed_payload is None or record.payload is None:
            return
        forgotten = replace(record, sealed_payload=None, payload=None)
        try:
            await self._objects.put(self._issued_key(record.token_hash), forgotten.to_json())
        except (CcstateError, OSError) as exc:
            log.warning(
                "could not drop the sealed payload of used token %s...: %s",
                record.token_hash[:12],
                exc,
            )

    async def chain(self, token: str) -> list[TokenRecord]:
        """The token's record and its ancestors, newest first (payload unsealed on the first)."""
        record = await self._load(token)
        return [record, *await self._ancestors(record)]

    # ----------------------------------------------------------------------- internals

    async def _load(self, token: str) -> TokenRecord:
        if not isinstance(token, str) or not token or len(token) > 256:
            raise _refuse("unknown", "That is not an execution token.", _RESTART)
        digest = token_hash(token)
        parsed = await self._read_parsed(digest)
        record = parsed.record if parsed is not None else None
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            raise _refuse(
                "unknown",
                "This token is unknown here: it was never issued for this workspace, "
                "or it expired and was cleaned up.",
                f"{_RESTART}, using this server's workspace.",
            )
        if record.sealed_payload is not None:
            assert parsed is not None
            if parsed.opened is None:  # these exact bytes opened with this token before
                bound = record if record.ancestors is not None else None
                payload = _unseal(token, record.sealed_payload, bound)
                parsed.opened = canonical_json(payload)
            record = replace(record, payload=json.loads(parsed.opened))
        return record

    async def _read(self, digest: str) -> TokenRecord | None:
        parsed = await self._read_parsed(digest)
        return parsed.record if parsed is not None else None

    async def _read_parsed(self, digest: str) -> _Parsed | None:
        stored = await self._objects.get(self._issued_key(digest))
        if stored is None:
            self._parsed.pop(digest, None)
            return None
        known = self._parsed.get(digest)
        if known is not None and known.body == stored.body:
            self._parsed.move_to_end(digest)
            return known
        try:
            record = TokenRecord.from_json(stored.body)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateCorrupt(
                f"The stored record of a token ({digest[:12]}...) cannot be read: {exc}.",
                next_step=f"{_RESTART}; the damaged record will expire.",
            ) from exc
        parsed = self._parsed[digest] = _Parsed(stored.body, record)
        self._expiry[digest] = record.expires_at
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)
        return parsed

    def _check_alive(self, record: TokenRecord) -> None:
        if self._clock.now() >= record.expires_at:
            raise _refuse(
                "expired",
                f"This {record.type} token expired at {record.expires_at.isoformat()}.",
                _next_for(record.type),
            )

    async def _ancestors(self, record: TokenRecord) -> list[TokenRecord]:
        out: list[TokenRecord] = []
        current = record
        while current.parent_hash is not None and len(out) < MAX_CHAIN:
            parent = await self._read(current.parent_hash)
            if parent is None:
                break
            out.append(parent)
            current = parent
        return out

    async def _check_chain(self, record: TokenRecord) -> list[TokenRecord]:
        """The ancestors still on record, checked to link up with ``record``."""
        ancestors = await self._ancestors(record)
        child = record
        for parent in ancestors:
            if not _links(child, parent):
                raise _refuse(
                    "wrong_chain",
                    f"This {record.type} token's chain is broken: its {parent.type} ancestor "
                    "authorizes something else or was issued to someone else.",
                    _RESTART,
                )
            child = parent
        return ancestors

    async def _maybe_cleanup(self) -> None:
        self._issued_since_cleanup += 1
        if self._issued_since_cleanup < CLEANUP_EVERY:
            return
        self._issued_since_cleanup = 0
        if self._cleanup_not_before is not None and self._clock.now() < self._cleanup_not_before:
            return
        with contextlib.suppress(CcstateError, OSError):
            await self.cleanup_expired()

    async def cleanup_expired(self, *, limit: int = CLEANUP_BATCH) -> int:
        """Delete up to ``limit`` token records expired for longer than a TTL and a grace.

        A child is issued only while its parent lives, so it expires at most one TTL after its
        parent: waiting that long keeps every ancestor of a live token on record.
        """
        now = self._clock.now()
        horizon = now - self._ttl - CLEANUP_GRACE
        removed = 0
        # Records issued from now on expire a TTL from now at the earliest.
        earliest_live = now + self._ttl
        keys = await self._objects.list_keys(f"{self._prefix}/issued/")
        listed = {key.rsplit("/", 1)[-1].removesuffix(".json") for key in keys}
        self._expiry = {d: at for d, at in self._expiry.items() if d in listed}
        for key in keys:
            if removed >= limit:
                break
            digest = key.rsplit("/", 1)[-1].removesuffix(".json")
            known = self._expiry.get(digest)
            if known is not None and known >= horizon:
                earliest_live = min(earliest_live, known)
                continue  # seen alive beyond the horizon: its expiry cannot move
            expires = await self._expiry_of(digest)
            if expires is not None and expires >= horizon:
                earliest_live = min(earliest_live, expires)
                continue
            await self._objects.delete(self._consumed_key(digest))
            await self._objects.delete(key)
            self._parsed.pop(digest, None)
            self._expiry.pop(digest, None)
            removed += 1
        # Every record was read: none can be removed before the earliest live one is old
        # enough (a record is removed a TTL and a grace after it expires).
        done = removed < limit
        self._cleanup_not_before = earliest_live + self._ttl + CLEANUP_GRACE if done else None
        if removed:
            log.info("removed %d expired execution token records", removed)
        return removed

    async def _expiry_of(self, digest: str) -> datetime | None:
        """When a stored record expires (None: gone or unreadable), read without building
        the record: a cleanup reads every record it has not seen, and keeps none of them."""
        stored = await self._objects.get(self._issued_key(digest))
        if stored is None:
            return None
        try:
            expires = datetime.fromisoformat(json.loads(stored.body)["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None  # damaged: removed like an expired one
        self._expiry[digest] = expires
        return expires

    def _issued_key(self, digest: str) -> str:
        return f"{self._prefix}/issued/{digest}.json"

    def _consumed_key(self, digest: str) -> str:
        return f"{self._prefix}/consumed/{digest}.json"


# --------------------------------------------------------------------------- record building


def _authorize(
    record: TokenRecord,
    operation: str | None,
    resource_type: str | None,
    identifier: str | None,
    payload: Any,
    region: str | None = None,
) -> TokenRecord:
    if operation not in OPERATIONS:
        raise InvalidInput(f"Operation must be one of {sorted(OPERATIONS)}, not {operation!r}.")
    if not resource_type:
        raise InvalidInput(
            "Code generation needs a resource type.",
            next_step="Pass resource_type, e.g. 'AWS::S3::Bucket'.",
        )
    if operation != "create" and not identifier:
        raise InvalidInput(
            f"A {operation} needs the identifier of the resource to {operation}.",
            next_step="Pass the resource's primary identifier (see ${list_resources}).",
        )
    return replace(
        record,
        operation=operation,
        resource_type=resource_type,
        identifier=identifier,
        payload=payload,
        payload_digest=payload_digest(payload),
        region=region,
    )


def _stack_plan(
    record: TokenRecord, operation: str | None, stack: str | None, plan: Any, region: str | None
) -> TokenRecord:
    """A stack plan's token: bound to the stack (its identifier) and the plan's exact document
    (every action with its unresolved properties), sealed like a change's payload."""
    if operation not in STACK_OPERATIONS:
        raise InvalidInput(
            f"A stack plan's operation must be one of {sorted(STACK_OPERATIONS)}, "
            f"not {operation!r}."
        )
    if not stack or plan is None:
        raise InvalidInput("A stack plan's token needs the stack's name and its plan.")
    return replace(
        record,
        operation=operation,
        identifier=stack,
        payload=plan,
        # The plan's own document (not the scan results that travel with it) is what binds.
        payload_digest=payload_digest(plan["plan"] if isinstance(plan, dict) else plan),
        region=region,
    )


def _inherit(record: TokenRecord, base: TokenRecord) -> TokenRecord:
    return replace(
        record,
        operation=base.operation,
        resource_type=base.resource_type,
        identifier=base.identifier,
        payload=base.payload,
        payload_digest=base.payload_digest,
        region=base.region,
        scan=base.scan,
    )


def _explain(record: TokenRecord, explanation: str | None, user_intent: str | None) -> TokenRecord:
    if not explanation or not explanation.strip():
        raise _refuse(
            "wrong_chain",
            "An explained token needs the explanation that was shown to the user.",
            "Call ${explain} with the generated_code token and record the explanation.",
        )
    return replace(record, explanation=explanation, user_intent=user_intent)


def _failed_scan(scan: ScanResult | None) -> ScanResult:
    if scan is None or scan.status != "FAILED":
        raise _refuse("scan_failed", "A scan_findings token needs a FAILED scan.", "Run ${scan}.")
    return scan


def _authorizing_scan(scan: ScanResult | None) -> ScanResult:
    if scan is None:
        raise _refuse("scan_failed", "A scanned token needs a scan result.", "Run ${scan}.")
    if not scan.authorizes_execution:
        raise _refuse(
            "scan_failed",
            f"The security scan {scan.status}: {scan.summary()}. A scan that did not pass "
            "authorizes nothing.",
            "Show the findings to the user: they may accept them with ${approve}, or fix the "
            "properties and start again with ${prepare}"
            if scan.status == "FAILED"
            else scan.message or "Install checkov, or set SECURITY_SCANNING=disabled.",
            scan_status=scan.status,
            failed_checks=scan.failed_checks,
        )
    return scan


# --------------------------------------------------------------------------- checks


def _check_type(record: TokenRecord, expected: str) -> None:
    if record.type != expected:
        raise _refuse(
            "wrong_type",
            f"A {expected} token is needed here; this is a {record.type} token.",
            _next_for(expected),
            actual=record.type,
        )


def _check_principal(record: TokenRecord, principal: TokenPrincipal) -> None:
    same_arn = hmac.compare_digest(record.principal.arn.encode(), principal.arn.encode())
    same_user = hmac.compare_digest(
        (record.principal.user or "").encode(), (principal.user or "").encode()
    )
    if not (same_arn and same_user):
        raise _refuse(
            "wrong_principal",
            f"This token was issued to {record.principal.describe()}, "
            f"not to {principal.describe()}.",
            "Tokens cannot be shared: get your own with ${environment}.",
        )


def _check_binding(
    record: TokenRecord, operation: str | None, resource_type: str | None, identifier: str | None
) -> None:
    if operation is not None and record.operation != operation:
        raise _refuse(
            "wrong_operation",
            f"This token authorizes a {record.operation}, not a {operation}.",
            f"{_RESTART} for the {operation}.",
        )
    if resource_type is not None and record.resource_type != resource_type:
        raise _refuse(
            "wrong_resource",
            f"This token authorizes a change to a {record.resource_type}, not a {resource_type}.",
            f"{_RESTART} for {resource_type}.",
        )
    if identifier is not None and record.identifier != identifier:
        raise _refuse(
            "wrong_resource",
            f"This token authorizes a change to '{record.identifier}', not to '{identifier}'.",
            f"{_RESTART} for '{identifier}'.",
        )


def _check_region(record: TokenRecord, region: str) -> None:
    if record.region is not None and record.region != region:
        raise _refuse(
            "wrong_region",
            f"This token authorizes a change in region {record.region}, not in {region}.",
            f"Pass region='{record.region}', or {_RESTART[0].lower()}{_RESTART[1:]} "
            f"with region='{region}'.",
        )


def _check_payload(record: TokenRecord, digest: str) -> None:
    if record.payload_digest is None or not hmac.compare_digest(record.payload_digest, digest):
        raise _refuse(
            "payload_mismatch",
            "The properties or patch given differ from the ones that were explained and "
            "scanned under this token.",
            f"Apply exactly what was explained, or {_RESTART[0].lower()}{_RESTART[1:]}.",
        )


def _links(child: TokenRecord, parent: TokenRecord) -> bool:
    if parent.type not in PARENT_TYPES[child.type] or parent.principal != child.principal:
        return False
    if child.type == "generated_code":
        return True
    return (
        parent.operation == child.operation
        and parent.resource_type == child.resource_type
        and parent.identifier == child.identifier
        and parent.region == child.region
        and hmac.compare_digest(parent.payload_digest or "", child.payload_digest or "")
    )


def _next_for(kind: str) -> str:
    return {
        "environment": "Call ${environment} for a new environment token",
        "credentials": "Call ${environment} or ${session} for a new credentials token",
        "scan_findings": "Call ${scan} with the explained token",
        "generated_code": _RESTART,
        "explained": "Call ${explain} with the generated_code token, then ${scan}",
        "scanned": "Call ${scan} with the explained token to get an execution token",
        "stack_plan": "Preview the stack's plan again (${stack_plan}) for a new plan token",
    }[kind]


def _refuse(
    check: str, message: str, next_step: str, step: str | None = None, **details: Any
) -> TokenError:
    """A refusal; ``step`` defaults to the check, for the faces to word the next step."""
    return TokenError(
        message, next_step=next_step.rstrip(".") + ".", step=step or check, check=check, **details
    )


def _already_used() -> TokenError:
    return _refuse(
        "consumed",
        "This execution token was already used: tokens are single use.",
        f"{_RESTART} to get a new token for another change.",
    )


def _ancestors_of(base: TokenRecord | None) -> dict[str, str] | None:
    """A new record's ancestors: its parent and the parent's own (None under a legacy parent)."""
    if base is None:
        return {}
    if base.ancestors is None:
        return None
    return {**base.ancestors, base.type: base.token_hash}


# --------------------------------------------------------------------------- payload sealing


def _bound(record: TokenRecord | None) -> bytes:
    """What a record's seal authenticates besides the token: nothing on a legacy record (no
    ancestor list), else every field of the record but the seal itself."""
    if record is None:
        return b""
    body = record.stored_fields()  # the stored JSON's values, without writing and reading it
    body.pop("sealed_payload", None)
    return canonical_json(body)


def _seal(token: str, payload: Any, bound: TokenRecord | None) -> str:
    return sealing.seal(token, payload, _bound(bound))


def _unseal(token: str, sealed: str, bound: TokenRecord | None) -> Any:
    try:
        return sealing.unseal(token, sealed, _bound(bound))
    except sealing.SealBroken as exc:  # the record was edited, or not this token's
        raise _refuse(
            "payload_mismatch", "This token's stored payload fails its integrity check.", _RESTART
        ) from exc
