"""Typed, validated hyperparameter configs for agents.

Agents declare frozen dataclasses (nested dataclasses allowed) and attach
validation rules with :func:`param`. Users override them from YAML files and
``--set key=value`` flags. Every mistake a user can make (typo, wrong type,
out-of-range value) is reported as a :class:`ConfigError` that names the
dotted key, because a silently ignored typo in a hyperparameter can waste a
day of compute before anyone notices.

Precedence, lowest to highest (see :func:`resolve_config`)::

    dataclass defaults < defaults YAML (e.g. experiments/*.yaml) < user YAML < --set

Example::

    @dataclass(frozen=True)
    class InnerConfig:
        lr: float = param(0.1, min=0, exclusive_min=True, help="inner-loop step size")

    @dataclass(frozen=True)
    class MAMLConfig:
        meta_batch_size: int = param(20, min=1, help="tasks per meta-update")
        inner: InnerConfig = field(default_factory=InnerConfig)

    cfg = resolve_config(MAMLConfig, config_file="my.yaml", overrides=["inner.lr=0.05"])
    print(dump_yaml(cfg))

Config classes must be defined at module level so that string annotations
(``from __future__ import annotations``) can be resolved.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from metarl.errors import UsageError

__all__ = [
    "ConfigError",
    "apply_overrides",
    "dump_yaml",
    "field_help",
    "from_dict",
    "load_yaml",
    "merge_dicts",
    "param",
    "parse_overrides",
    "resolve_config",
    "to_dict",
    "validate",
]

C = TypeVar("C")

_RULE_KEYS = ("min", "max", "exclusive_min", "exclusive_max", "choices", "help")


class ConfigError(UsageError):
    """A user-facing configuration mistake; the message names the offending key."""


def param(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    min: float | None = None,
    max: float | None = None,
    exclusive_min: bool = False,
    exclusive_max: bool = False,
    choices: Sequence[Any] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field carrying validation rules, so the rule lives next to the default.

    ``min``/``max`` bound numbers (and each element of a tuple/list of numbers);
    ``choices`` restricts to a fixed set; ``help`` feeds CLI help and error messages.
    """
    metadata: dict[str, Any] = {"help": help}
    if min is not None:
        metadata["min"] = min
    if max is not None:
        metadata["max"] = max
    if exclusive_min:
        metadata["exclusive_min"] = True
    if exclusive_max:
        metadata["exclusive_max"] = True
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def field_help(cls: type) -> dict[str, str]:
    """Dotted key -> help text, for ``--help`` listings of every settable key."""
    out: dict[str, str] = {}
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_dataclass_type(tp):
            out.update({f"{f.name}.{k}": v for k, v in field_help(tp).items()})
        else:
            out[f.name] = f.metadata.get("help", "")
    return out


# --------------------------------------------------------------------------- types


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:  # locally defined classes with string annotations
        raise TypeError(
            f"cannot resolve type annotations of {cls.__qualname__}: {exc}; define config dataclasses at module level"
        ) from exc


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML-parsed value to ``tp`` or raise naming ``key``.

    Lenient only where YAML itself is surprising: PyYAML reads ``1e-3`` as a
    string, so numeric strings are accepted for numeric fields, and integral
    floats (``1e6``) for int fields.
    """
    if tp is Any:
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, prefix=f"{key}.")
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        items = list(value)
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(items)}: {value!r}")
            coerced = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(items, args, strict=True))]
        else:
            elem = args[0] if args else Any
            coerced = [_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(items)]
        return tuple(coerced) if (origin or tp) is tuple else coerced
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        vt = args[1] if args else Any
        return {k: _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected int, got bool {value!r}")
        if isinstance(value, int):
            return value
        number = _as_float(value)
        if number is not None and number.is_integer():
            return int(number)
        raise ConfigError(f"{key}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected float, got bool {value!r}")
        number = _as_float(value)
        if number is not None:
            return number
        raise ConfigError(f"{key}: expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected str, got {type(value).__name__} {value!r} (quote it in YAML)")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    raise TypeError(f"{key}: unsupported config field type {tp!r}")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- rules


def _describe_bounds(meta: Mapping[str, Any]) -> str:
    parts = []
    if "min" in meta:
        parts.append(f"{'>' if meta.get('exclusive_min') else '>='} {meta['min']}")
    if "max" in meta:
        parts.append(f"{'<' if meta.get('exclusive_max') else '<='} {meta['max']}")
    return " and ".join(parts)


def _check_rules(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(meta['choices'])}")
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isfinite(v):  # no hyperparameter means anything at inf or NaN; it would poison the run later
            bounds = _describe_bounds(meta)
            raise ConfigError(f"{key}: {v!r} is not a finite number; allowed: a finite number{' ' + bounds if bounds else ''}")
        if "min" not in meta and "max" not in meta:
            continue
        low_bad = "min" in meta and (v <= meta["min"] if meta.get("exclusive_min") else v < meta["min"])
        high_bad = "max" in meta and (v >= meta["max"] if meta.get("exclusive_max") else v > meta["max"])
        if low_bad or high_bad:
            raise ConfigError(f"{key}: {v!r} is out of range; allowed: {_describe_bounds(meta)}")


# --------------------------------------------------------------------------- build / validate


def _unknown_key_error(key: str, prefix: str, valid: Iterable[str]) -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{prefix}{key}'{hint} (valid keys here: {', '.join(valid)})")


def _build(cls: type[C], data: Mapping[str, Any], prefix: str = "") -> C:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise _unknown_key_error(str(k), prefix, fields)
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if name in data:
            raw = data[name]
            if _is_dataclass_type(hints[name]) and isinstance(raw, Mapping):
                raw = _with_field_default(f, raw)
            value = _coerce(raw, hints[name], key)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise ConfigError(f"missing required config key '{key}'")
        _check_rules(value, f.metadata, key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from exc


def _with_field_default(f: dataclasses.Field, partial: Mapping[str, Any]) -> Mapping[str, Any]:
    """A partial nested section starts from the *parent's* default for it, which may
    differ from the nested class's own defaults (``default_factory=lambda: Inner(lr=0.5)``)."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return partial
    if not dataclasses.is_dataclass(default):
        return partial
    return merge_dicts(to_dict(default), partial)


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build and validate ``cls`` from a (possibly partial) nested mapping."""
    return _build(cls, data)


def validate(cfg: Any, prefix: str = "") -> None:
    """Check types and rules of an already constructed config (e.g. built in code)."""
    hints = _type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        key = prefix + f.name
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, prefix=f"{key}.")
            continue
        if _coerce(value, hints[f.name], key) != value:
            raise ConfigError(f"{key}: expected {_type_name(hints[f.name])}, got {value!r}")
        _check_rules(value, f.metadata, key)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML-safe nested dict (tuples become lists, paths strings)."""
    return _plain(dataclasses.asdict(cfg))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------- files / overrides


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config mapping from YAML.

    A run directory's ``config.yaml`` (``{run: ..., config: ...}``) is accepted
    too and yields its ``config`` section, so ``--config runs/x/config.yaml``
    reproduces a past run.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; allowed: a YAML file of hyperparameters") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if set(data) == {"run", "config"} and isinstance(data["config"], dict):
        return data["config"]
    return data


def _field_type_at(cls: type, dotted: str) -> Any:
    """Resolve the annotated type of a dotted key, raising the unknown-key error on typos."""
    parts = dotted.split(".")
    tp: Any = cls
    for depth, part in enumerate(parts):
        if not _is_dataclass_type(tp):
            prefix = ".".join(parts[:depth])
            raise ConfigError(f"'{prefix}' is not a section, so '{dotted}' cannot be set")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            prefix = ".".join(parts[:depth]) + "." if depth else ""
            raise _unknown_key_error(part, prefix, names)
        tp = _type_hints(tp)[part]
    return tp


def _parse_scalar(raw: str, tp: Any) -> Any:
    """Parse a ``--set`` value; string fields keep the raw text so ``name=123`` stays a str."""
    plain_str = tp is str or (_is_union(tp) and str in typing.get_args(tp))
    if plain_str and not (type(None) in typing.get_args(tp) and raw in ("null", "~", "None")):
        return raw
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def parse_overrides(cls: type, overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``, keys checked against ``cls``."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = _parse_scalar(raw, _field_type_at(cls, key))
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with an earlier override of '{part}'")
        node[leaf] = value
    return nested


def merge_dicts(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge; ``override`` wins, nested sections merge key by key."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def apply_overrides(cfg: C, overrides: Sequence[str]) -> C:
    """Return a new config with ``--set`` overrides applied and re-validated."""
    return from_dict(type(cfg), merge_dicts(to_dict(cfg), parse_overrides(type(cfg), overrides)))


def resolve_config(
    cls: type[C],
    *,
    defaults_file: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> C:
    """Merge dataclass defaults < defaults YAML < user YAML < ``--set`` and validate once."""
    data: dict[str, Any] = {}
    for path in (defaults_file, config_file):
        if path is not None:
            layer = load_yaml(path)
            try:
                from_dict(cls, merge_dicts(data, layer))  # attribute errors to the file that caused them
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            data = merge_dicts(data, layer)
    data = merge_dicts(data, parse_overrides(cls, overrides))
    return from_dict(cls, data)


def dump_yaml(cfg: Any, path: str | Path | None = None) -> str:
    """YAML text that :func:`from_dict` reads back to an equal config (field order kept)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)
    if path is not None:
        Path(path).write_text(text)
    return text
