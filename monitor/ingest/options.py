"""Source options: one dataclass per source type, filled from config, environment and flags.

Precedence, lowest first: the dataclass default, the ``[mqtt]`` section (MQTT
only), the source's ``[sources.NAME]`` table, ``FUNDFLOW_SOURCES__NAME__KEY``
environment variables (so tokens and passwords need not live in the file),
then command-line flags. Every field carries its help text, which becomes the
``--help`` of ``fundflow ingest SOURCE``: the docs and the flags cannot drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

import orjson

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
ENV_PREFIX = "FUNDFLOW_SOURCES__"


def opt(default: Any, help: str, *, factory: Any = None, flag: str | None = None, secret: bool = False) -> Any:
    """A dataclass field with help text (and an optional flag name other than --field-name)."""
    meta = {"help": help, "flag": flag, "secret": secret}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = getattr(typ, "__origin__", None)
    if typ is bool:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if typ is int:
        return int(value)
    if typ is float:
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string")
        return value
    if origin is list or typ is list:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return list(orjson.loads(text))
            return [v.strip() for v in text.split(",") if v.strip()]
        return list(value)
    if origin is dict or typ is dict:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return dict(orjson.loads(text))
            out = {}
            for part in text.split(","):
                if part.strip():
                    k, _, v = part.partition("=")
                    out[k.strip()] = v.strip()
            return out
        return dict(value)
    return value


def apply_mapping(obj: T, values: Mapping[str, Any], where: str, ignore: tuple[str, ...] = ()) -> T:
    """Set fields of ``obj`` from a config table; unknown keys are an error."""
    hints = get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        attr = key.replace("-", "_")
        if attr in ignore:
            continue
        if attr not in names:
            raise ValueError(f"unknown option {where}.{key} (known: {', '.join(sorted(names))})")
        setattr(obj, attr, _coerce(value, hints[attr], f"{where}.{key}"))
    return obj


def env_overrides(name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``FUNDFLOW_SOURCES__<NAME>__<KEY>=value`` variables for source ``name``."""
    env = os.environ if env is None else env
    prefix = f"{ENV_PREFIX}{name.upper().replace('-', '_')}__"
    return {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field: ``--field-name``; lists repeat the flag, dicts take KEY=VALUE."""
    hints = get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options (also settable in [sources.NAME] of the config)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = hints[f.name]
        origin = getattr(typ, "__origin__", None)
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]  # a field has a default or a factory
        shown = "***" if f.metadata.get("secret") and default else default
        help_text = f"{f.metadata.get('help', '')} [config key: {f.name}; default: {shown!r}]"
        help_text = help_text.replace("%", "%%")
        if typ is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif origin is list:
            group.add_argument(flag, dest=f.name, action="append", default=None, metavar="VALUE",
                               help=help_text + " (repeat the flag for several)")
        elif origin is dict:
            group.add_argument(flag, dest=f.name, action="append", default=None, metavar="KEY=VALUE",
                               help=help_text + " (repeat the flag for several)")
        else:
            conv = {int: int, float: float}.get(typ, str)
            group.add_argument(flag, dest=f.name, type=conv, default=None, metavar=f.name.upper(), help=help_text)


def apply_args(obj: T, args: argparse.Namespace) -> T:
    """Flags given on the command line override config values."""
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        typ = hints[f.name]
        if getattr(typ, "__origin__", None) is dict:
            out: dict[str, Any] = {}
            for item in value:
                k, sep, v = item.partition("=")
                if not sep:
                    k, sep, v = item.partition(":")
                out[k.strip()] = v.strip()
            value = out
        elif getattr(typ, "__origin__", None) is list:
            flat: list[Any] = []
            for item in value:
                flat.extend(_coerce(item, typ, f.name))
            value = flat
        setattr(obj, f.name, value)
    return obj


def redacted(obj: Any) -> dict[str, Any]:
    """The options as a dict with secrets masked, for logging."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = "***" if f.metadata.get("secret") and v else v
    return out
