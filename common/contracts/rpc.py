"""A NATS request/reply contract: one subject, the type of its request and of its reply, the errors it may answer.

Types are msgspec Structs: the publisher encodes with the contract, the consumer decodes and validates once, and a
payload that does not fit (a missing or unknown field, a wrong type, a value out of bounds) is a 400 naming the
field, in the same words on every subject. msgspec because a Struct is both the type and its validator (no second
schema to keep in step), it decodes and checks in one pass in C (the hot user reads pay about a microsecond), and
it speaks the camelCase names of the public contract through `rename` while Python code uses snake_case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from common.contracts.errors import ValidationFailed

# Longer than any legitimate value (passwords are capped at 128, tokens are a few hundred bytes): refused before
# any hashing or parsing work is spent on it.
MAX_STRING_LENGTH = 4096
Text = Annotated[str, msgspec.Meta(max_length=MAX_STRING_LENGTH)]

Req = TypeVar("Req")


class Message(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Base of every request and event type: unknown fields are refused, Python names map to camelCase."""


class Empty(Message):
    """A request without data."""


_AT = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.+)`$")
_MISSING = re.compile(r"^Object missing required field `(.+)`$")


def validation_failed(error: msgspec.ValidationError, type_: Any = None) -> ValidationFailed:
    """msgspec's error as our 400: the message names the field, `fields` holds it under the field's name. A check
    of the whole Struct (its `__post_init__`) names the field it is about first: "credential must ..."."""
    text = str(error)
    path = ""
    if match := _AT.search(text):
        path, text = match.group(1), text[: match.start()]
    parent = ".".join(part for part in re.split(r"\.|\[\d+\]", path) if part)
    if match := _UNKNOWN.match(text):
        field = ".".join(filter(None, (parent, match.group(1))))
        message = f"property {field} should not exist"
    elif match := _MISSING.match(text):
        field = ".".join(filter(None, (parent, match.group(1))))
        message = f"{field} is required"
    elif not parent and text.split(" ", 1)[0] in _field_names(type_):
        field, message = text.split(" ", 1)[0], text
    else:
        field = parent or "data"
        message = f"{field} {_problem(text)}"
    return ValidationFailed([message], fields={field: [message]})


def _field_names(type_: Any) -> tuple[str, ...]:
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return tuple(field.encode_name for field in msgspec.structs.fields(type_))
    return ()


_NOUNS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "uuid": "a UUID",
}
_EXPECTED = re.compile(r"^Expected `([^`]+)`(.*?)(?:, got `[^`]+`)?$")


def _problem(text: str) -> str:
    """msgspec's "Expected `int` >= 1, got ..." as "must be an integer >= 1"; a value that breaks a pattern only
    "is not valid" (the pattern is no help to a caller)."""
    if match := _EXPECTED.match(text):
        kinds = " or ".join(_NOUNS.get(kind, kind) for kind in match.group(1).split(" | "))
        bounds = match.group(2)
        if " matching regex " in bounds:
            return "is not valid"
        return f"must be {kinds}{bounds}"
    if text == "Invalid UUID":
        return "must be a UUID"
    if text == "Integer value out of range":
        return "is out of range"
    return (text[0].lower() + text[1:]) if text else "is not valid"


def decode(data: Any, type_: type[Req]) -> Req:
    """`data` (JSON-shaped builtins) as `type_`, validated; a 400 naming the field otherwise. `None` is an empty
    object."""
    try:
        return msgspec.convert({} if data is None else data, type_)
    except msgspec.ValidationError as exc:
        raise validation_failed(exc, type_) from None


def to_builtins(value: Any) -> Any:
    """A Struct (or anything holding Structs) as JSON-shaped builtins, field names as the contract spells them."""
    return msgspec.to_builtins(value)


@dataclass(frozen=True, eq=False)
class Contract(Generic[Req]):
    """One subject. `request` is what its consumer decodes (`Empty` for none); `reply` documents what it answers
    (None: an empty reply); `errors` are the statuses it may answer besides 200. Values are typed JSON: a number
    or boolean written as a string is refused."""

    subject: str
    request: type[Req]
    reply: Any = None
    errors: tuple[int, ...] = ()

    def encode(self, data: Any) -> Any:
        """The request as it goes on the wire: checked against the contract first, so a publisher cannot send
        what the consumer would refuse."""
        if isinstance(data, self.request):
            return to_builtins(data)
        return to_builtins(decode(data, self.request))

    def decode(self, data: Any) -> Req:
        return decode(data, self.request)


TypedHandler = Callable[[Any, Any], Any]  # (common.contracts.envelope.Request, the decoded request) -> reply
