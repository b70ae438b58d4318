"""What every resource handler does, and the helpers they share.

A handler creates through the service API and reads back from it on every call, so an
out-of-band change shows in ``read``. Updates go property by property: a handler method
``set_<Property>(identifier, new, old)`` applies one top-level property (``new`` is None when
the property was removed).
"""

from __future__ import annotations

import secrets
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from ccstate.sandbox.aws import AwsContext
from ccstate.sandbox.errors import HandlerError

Model = dict[str, Any]
Setter = Callable[[str, Any, Any], None]


class Handler(ABC):
    type_name: ClassVar[str]
    service: ClassVar[str]
    # Top-level property that holds the primary identifier.
    identifier_property: ClassVar[str]
    # Properties the handler can write on create (besides the identifier property).
    writable: ClassVar[frozenset[str]]

    def __init__(self, aws: AwsContext) -> None:
        self.aws = aws
        self.client = aws.client(self.service)

    # ---- the five handler operations ---------------------------------------------------

    @abstractmethod
    def create(self, model: Model) -> str:
        """Create from ``model``; return the new primary identifier."""
        ...

    @abstractmethod
    def read(self, identifier: str) -> Model:
        """The current model, read from the service. Raises HandlerError('NotFound')."""
        ...

    @abstractmethod
    def delete(self, identifier: str) -> None: ...

    @abstractmethod
    def list_identifiers(self) -> list[str]: ...

    def update(self, identifier: str, before: Model, after: Model) -> None:
        for prop in sorted(set(before) | set(after)):
            if before.get(prop) != after.get(prop):
                self.setter(prop)(identifier, after.get(prop), before.get(prop))

    # ---- hooks ---------------------------------------------------------------------------

    def setter(self, prop: str) -> Setter:
        found: Setter | None = getattr(self, f"set_{prop}", None)
        if found is None:
            raise HandlerError(
                "NotUpdatable",
                f"The sandbox cannot update property '{prop}' of {self.type_name}.",
            )
        return found

    def existing_identifier(self, model: Model) -> str | None:
        """The identifier of a resource the create would collide with, if any."""
        ident = model.get(self.identifier_property)
        if not isinstance(ident, str):
            return None
        return ident if self.exists(ident) else None

    def exists(self, identifier: str) -> bool:
        try:
            self.read(identifier)
        except HandlerError as exc:
            if exc.error_code == "NotFound":
                return False
            raise
        return True

    def not_found(self, identifier: str) -> HandlerError:
        return HandlerError("NotFound", f"{self.type_name} '{identifier}' was not found.")

    def generated_name(self, max_length: int = 64, *, lower: bool = False) -> str:
        """Like CloudFormation's generated physical names: a prefix and a random suffix."""
        alphabet = string.ascii_lowercase + string.digits
        suffix = "".join(secrets.choice(alphabet) for _ in range(12))
        prefix = self.type_name.split("::")[-1]
        name = f"cc-{prefix}-{suffix}"[:max_length]
        return name.lower() if lower else name


# --------------------------------------------------------------------------- shared helpers


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError, *codes: str) -> bool:
    code = error_code(exc)
    return code in codes or "NotFound" in code or code.startswith("NoSuch")


def tags_to_dict(items: Iterable[dict[str, Any]] | None, key: str = "Key", value: str = "Value"):
    return {item[key]: item.get(value, "") for item in items or []}


def dict_to_tags(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict]:
    return [{key: k, value: tags[k]} for k in sorted(tags)]


def model_tags(model_value: Any) -> dict[str, str]:
    """CloudFormation's Tags property (a list of Key/Value, or a map) as a dict."""
    if isinstance(model_value, dict):
        return {str(k): str(v) for k, v in model_value.items()}
    return tags_to_dict(model_value)


def sync_tags(
    new: Any,
    old: Any,
    add: Callable[[dict[str, str]], None],
    remove: Callable[[list[str]], None],
) -> None:
    """Make the tags ``old`` into ``new`` with the service's add and remove calls."""
    before, after = model_tags(old), model_tags(new)
    gone = sorted(set(before) - set(after))
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if gone:
        remove(gone)
    if changed:
        add(changed)


def with_tags(model: Model, tags: dict[str, str]) -> Model:
    """Put tags in a read model as CloudFormation writes them: sorted list, omitted when empty."""
    if tags:
        model["Tags"] = dict_to_tags(tags)
    return model


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def pick(source: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """``{target: source[key]}`` for every ``key -> target`` present in ``source``."""
    return {target: source[key] for key, target in mapping.items() if key in source}
