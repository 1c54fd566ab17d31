"""Typed values of config settings (text from the command line and YAML values, checked against a field's type),
and where config files are found (the shipped ones by name)."""

from __future__ import annotations

import ast
import dataclasses
import typing
from importlib import resources
from pathlib import Path


def annotation(f: dataclasses.Field) -> str:
    """A field's annotation as text ('float', 'tuple[int, ...]'), whether or not its module defers annotations."""
    return f.type if isinstance(f.type, str) else f.type.__name__ if isinstance(f.type, type) else str(f.type)


def coerce(value: object, type_text: str, key: str) -> object:
    """Check `value` against a field's annotation (text) and convert where lossless."""
    typ = eval(type_text, {"tuple": tuple, "int": int, "float": float, "str": str, "bool": bool})  # noqa: S307 - our own annotations only
    origin = typing.get_origin(typ)
    if origin is tuple:
        (inner, _) = typing.get_args(typ)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number or (isinstance(value, str) and inner is str):
            value = (value,)  # one bare value is a one-element list: `eval.splits=valid`
        if not isinstance(value, list | tuple):
            raise ValueError(f"config key '{key}' expects a list, got {value!r}: write {key}=[a,b] (YAML: [a, b])")
        return tuple(coerce(v, inner.__name__, key) for v in value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is float and isinstance(value, str) and _finite_float(value) is not None:
        return _finite_float(value)  # YAML 1.1 reads `1e-3` (no dot) as a string
    if typ is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if typ is bool and isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"config key '{key}' expects {type_text}, got {value!r} ({type(value).__name__})")
    return value


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if abs(value) < float("inf") else None


def parse_value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text.startswith("[") and text.endswith("]"):  # a list of bare words: `eval.splits=[valid,test]`
            return [parse_value(part.strip()) for part in text[1:-1].split(",") if part.strip()]
        return text  # a bare string such as `quantize.name=rvq`


def packaged_configs() -> dict[str, Path]:
    """The configs shipped with the package, by name (file stem)."""
    root = resources.files("sidrec") / "configs"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML path, or the name of a shipped config (`beauty_tiger`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = packaged_configs()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ValueError(
        f"config '{name_or_path}' is neither a file nor a shipped config. Shipped: {', '.join(sorted(shipped))}"
    )


__all__ = ["added", "annotation", "coerce", "packaged_configs", "parse_value", "resolve_config_path"]


def added(default, *, before):
    """A setting added after runs were recorded. `before` is the value that does what the code did before the
    setting existed: a stored fingerprint or record without the key was made with it (`fingerprint.first_values`)."""
    return dataclasses.field(default=default, metadata={"before": before})
