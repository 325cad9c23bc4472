"""DRF serializers derived from the contracts' Structs (common/contracts): a reply the gateway documents in
`/api/schema/` is the very type the service answers with, not a second description of it."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
from rest_framework import serializers

_FORMATS: dict[str, type[serializers.Field]] = {
    "date-time": serializers.DateTimeField,
    "email": serializers.EmailField,
}
_cache: dict[type[msgspec.Struct], type[serializers.Serializer]] = {}


def serializer_of(struct: type[msgspec.Struct], name: str | None = None) -> type[serializers.Serializer]:
    """A serializer with `struct`'s fields under their wire names (for the OpenAPI document and the browsable API);
    `name`: the class name (the schema's component is named after it), by default the Struct's."""
    if struct not in _cache:
        info = mi.type_info(struct)
        assert isinstance(info, mi.StructType)
        fields = {field.encode_name: _field(field.type, required=field.required) for field in info.fields}
        name = name or f"{struct.__name__}Serializer"
        _cache[struct] = type(name, (serializers.Serializer,), {"__module__": __name__, **fields})
    return _cache[struct]


def _field(info: mi.Type, *, required: bool = True) -> serializers.Field:
    kwargs: dict[str, Any] = {} if required else {"required": False}
    schema: dict[str, Any] = {}
    if isinstance(info, mi.Metadata):
        schema = info.extra_json_schema or {}
        info = info.type
    if isinstance(info, mi.UnionType):
        types = [member for member in info.types if not isinstance(member, mi.NoneType)]
        kwargs["allow_null"] = len(types) < len(info.types)
        info = types[0]
        if isinstance(info, mi.Metadata):
            schema = info.extra_json_schema or {}
            info = info.type
    if isinstance(info, mi.StructType):
        return serializer_of(info.cls)(**kwargs)
    if isinstance(info, mi.ListType):
        return serializers.ListField(child=_field(info.item_type), **kwargs)
    if isinstance(info, mi.DictType):
        return serializers.DictField(**kwargs)
    if isinstance(info, mi.UUIDType):
        return serializers.UUIDField(**kwargs)
    if isinstance(info, mi.BoolType):
        return serializers.BooleanField(**kwargs)
    if isinstance(info, mi.IntType):
        return serializers.IntegerField(**kwargs)
    if isinstance(info, mi.StrType):
        if "enum" in schema:
            return serializers.ChoiceField(choices=schema["enum"], **kwargs)
        return _FORMATS.get(schema.get("format", ""), serializers.CharField)(**kwargs)
    raise TypeError(f"no serializer field for {info!r}")
