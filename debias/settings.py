"""Settings declared once: each dataclass field carries its flag, help text and valid range.

A settings dataclass (`debias.fit.FitConfig`, `debias.weighting.WeightingSettings`) declares every
field with `setting(...)`. Everything else is derived from that one declaration: the command-line
options (debias.cli_options), the range checks (`problems`), which settings a resumed fit must
keep (`runtime=False`) and which it may change (`runtime=True`). Adding a setting means adding one
field.

    @dataclass(frozen=True)
    class Example:
        epochs: int = setting(4, "--epochs", "Passes over the training split.", low=1)

    problems(Example(epochs=0))   # ["--epochs must be >= 1, got 0"]
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass


@dataclass(frozen=True)
class Setting:
    """What a field of a settings dataclass means to a user.

    flag      its command-line option ("--epochs"); None for a field with no option of its own
    help      the option's help text
    runtime   True when it changes how a fit runs, not what it trains (device, evaluation batch):
              a resumed fit takes it from the command line; False: a resumed fit must keep it
    choices   allowed values (each element's, for a tuple field), or a function returning them
    low/high  inclusive bounds (exclusive with low_open); `why` explains the bound in messages
    multiple_of  the value must be a multiple of this
    metavar   how the help text shows the value
    """

    flag: str | None
    help: str
    runtime: bool = False
    choices: tuple | Callable[[], tuple] | None = None
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    why: str = ""
    multiple_of: int | None = None
    metavar: str | None = None

    def allowed(self) -> tuple | None:
        """The allowed values, calling `choices` when it is a function (registries fill up lazily)."""
        return self.choices() if callable(self.choices) else self.choices


def setting(default=MISSING, flag: str | None = None, help: str = "", *, default_factory=MISSING, **meta):
    """A dataclass field with its Setting in the metadata (see the module docstring)."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"setting": Setting(flag, help, **meta)}
    )


@dataclass(frozen=True)
class Declared:
    """One declared setting of a (possibly nested) settings dataclass: its path, field, Setting and type."""

    path: tuple[str, ...]
    field: dataclasses.Field
    setting: Setting
    hint: object

    @property
    def name(self) -> str:
        """The field's own name (unique across nesting levels; used as the click parameter name)."""
        return self.path[-1]


def declared(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[Declared]:
    """Every declared setting of `cls`, recursing into fields whose type is a settings dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from declared(hint, (*prefix, f.name))
        elif "setting" in f.metadata:
            yield Declared((*prefix, f.name), f, f.metadata["setting"], hint)


def value_at(obj, path: tuple[str, ...]):
    """obj.a.b for path ("a", "b")."""
    for name in path:
        obj = getattr(obj, name)
    return obj


def replace_at(obj, values: dict[tuple[str, ...], object]):
    """A copy of a frozen (nested) dataclass with the values at the given paths replaced."""
    top: dict[str, object] = {}
    nested: dict[str, dict] = {}
    for path, value in values.items():
        if len(path) == 1:
            top[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    for name, inner in nested.items():
        top[name] = replace_at(getattr(obj, name), inner)
    return dataclasses.replace(obj, **top)


def _optional(hint) -> tuple[object, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    args = typing.get_args(hint)
    if (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def base_type(hint) -> tuple[object, bool, bool]:
    """(element type, None allowed, is a tuple of them) of a field's type hint: int, float, bool or str."""
    inner, optional = _optional(hint)
    if typing.get_origin(inner) is tuple:
        return typing.get_args(inner)[0], optional, True
    return inner, optional, False


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def _type_problem(kind, value) -> str | None:
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if kind is str:
        return None if isinstance(value, str) else "must be text"
    return None


def _range_problem(s: Setting, value) -> str | None:
    if s.low is not None and (value < s.low or (s.low_open and value == s.low)):
        return f"must be {'>' if s.low_open else '>='} {s.low:g}"
    if s.high is not None and value > s.high:
        return f"must be <= {s.high:g}"
    if s.multiple_of is not None and value % s.multiple_of:
        return f"must be a multiple of {s.multiple_of}"
    return None


def value_problems(item: Declared, value) -> list[str]:
    """What is wrong with `value` for one declared setting ([] when nothing)."""
    s = item.setting
    who = s.flag or item.name
    kind, optional, many = base_type(item.hint)
    if value is None:
        return [] if optional else [f"{who} must be given"]
    values = value if many else (value,)
    if many and not isinstance(value, tuple):
        return [f"{who} must be a list of names, got {value!r}"]
    allowed = s.allowed()
    found = []
    for one in values:
        problem = _type_problem(kind, one)
        if problem is None and allowed is not None and one not in allowed:
            problem = f"must be one of {', '.join(map(str, allowed))}"
        if problem is None and kind in (int, float):
            problem = _range_problem(s, one)
            if problem is not None and s.why:
                problem += f" ({s.why})"
        if problem is not None:
            found.append(f"{who} {problem}, got {_shown(one)}")
    return found


def problems(obj) -> list[str]:
    """Every declared setting of `obj` whose value has the wrong type or is out of its range or choices."""
    found = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint, value = hints[f.name], getattr(obj, f.name)
        if dataclasses.is_dataclass(hint):
            if isinstance(value, hint):
                found += problems(value)
            else:
                found.append(f"{f.name} must be a {hint.__name__} (or its settings by name), got {value!r}")
        elif "setting" in f.metadata:
            found += value_problems(Declared((f.name,), f, f.metadata["setting"], hint), value)
    return found


__all__ = [
    "Declared",
    "Setting",
    "base_type",
    "declared",
    "problems",
    "replace_at",
    "setting",
    "value_at",
    "value_problems",
]
