"""Handlers for services that keep settings as a string-valued attribute map (SQS, SNS)."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from ccstate.sandbox.handlers.base import Handler, Setter

Codec = tuple[Callable[[Any], str], Callable[[str], Any]]  # (to the service, from the service)

INTEGER: Codec = (str, int)
STRING: Codec = (str, str)
BOOLEAN: Codec = (lambda v: "true" if v else "false", lambda s: s.lower() == "true")
JSON_OBJECT: Codec = (
    lambda v: v if isinstance(v, str) else json.dumps(v),
    lambda s: json.loads(s) if s else {},
)


class AttributeHandler(Handler):
    """``attributes`` maps a CloudFormation property to (service attribute name, codec)."""

    attributes: ClassVar[dict[str, tuple[str, Codec]]]
    # Service defaults the read leaves out (they are not set by the user).
    defaults: ClassVar[dict[str, str]] = {}
    # What a property removed by a patch goes back to, where the read shows the default.
    reset: ClassVar[dict[str, str]] = {}

    def to_service(self, model: dict[str, Any]) -> dict[str, str]:
        return {
            name: codec[0](model[prop])
            for prop, (name, codec) in self.attributes.items()
            if prop in model
        }

    def from_service(self, attributes: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prop, (name, codec) in self.attributes.items():
            value = attributes.get(name)
            if value is None or value == "" or self.defaults.get(name) == value:
                continue
            out[prop] = codec[1](value)
        return out

    def setter(self, prop: str) -> Setter:
        if prop not in self.attributes:
            return super().setter(prop)
        name, codec = self.attributes[prop]

        def set_attribute(identifier: str, new: Any, old: Any) -> None:
            restored = self.defaults.get(name, self.reset.get(name, ""))
            self.set_attribute(identifier, name, restored if new is None else codec[0](new))

        return set_attribute

    @abstractmethod
    def set_attribute(self, identifier: str, name: str, value: str) -> None: ...
