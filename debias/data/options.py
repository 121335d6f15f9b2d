"""A loader's keyword options, checked before the call: a wrong one is one UserError that names it
the way the user typed it (its flag, or `--data-option NAME=VALUE`), says why it does not apply to
this kind of dataset, suggests the closest option that does and lists them all.

Loaders take no `**kwargs`: an option nobody reads would be a setting the user believes in and
the fit ignores.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

from debias.data.columns import closest
from debias.errors import UserError

# Loader option -> the `debias fit` flag that sets it. Every other option is given as
# `--data-option NAME=VALUE`. The one place this spelling lives: the command line imports it.
OPTION_FLAGS = {
    "root": "--root",
    "target": "--target",
    "groups": "--groups",
    "limit": "--limit",
    "cache_dir": "--cache-dir",
    "workers": "--workers",
    "image_size": "--image-size",
}
# Every loader takes `progress` (whether a progress bar shows); --quiet sets it, never the user by
# name, so the listings of what a dataset takes leave it out.
QUIET_OPTION = "progress"


def option_flag(name: str, value: object = None) -> str:
    """How the user gives option `name` (with `value` when not None): "--target Smiling", "--data-option spurious=hat"."""
    shown = "VALUE" if value is None else _shown(value)
    if name in OPTION_FLAGS:
        return OPTION_FLAGS[name] if value is None else f"{OPTION_FLAGS[name]} {shown}"
    return f"--data-option {name}={shown}"


def loader_options(loader: Callable, supplied: Sequence[str] = ()) -> list[str]:
    """The keyword options `loader` takes, in signature order, without those the caller `supplied` itself (a path)."""
    parameters = inspect.signature(loader).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise TypeError(f"{loader.__qualname__} takes **kwargs: a loader must name every option it reads")
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keyword and p.name not in supplied]


def check_options(
    options: Mapping[str, object],
    loader: Callable,
    kind: str,
    not_taken: Mapping[str, str] | None = None,
    supplied: Sequence[str] = (),
) -> None:
    """Raise UserError if `options` holds a keyword that `loader` does not take.

    kind: the dataset kind for the message ("the synthfaces dataset", "a CSV manifest (faces.csv)").
    not_taken: option -> why it does not apply to this kind ("it takes its label from the `label`
        column"), for the options users of other datasets are likely to bring along.
    supplied: parameters the caller fills itself (the manifest's path), never options.
    """
    accepted = loader_options(loader, supplied)
    unknown = [name for name in options if name not in accepted]
    if not unknown:
        return
    name = unknown[0]
    reason = (not_taken or {}).get(name)
    message = f"{option_flag(name, options[name])} does not apply to {kind}" + (f": {reason}." if reason else ".")
    suggestion = closest(name, accepted)
    if suggestion is not None:
        message += f" Did you mean {option_flag(suggestion, options[name])}?"
    if len(unknown) > 1:
        message += f" Nor do {', '.join(option_flag(other) for other in unknown[1:])}."
    raise UserError(f"{message} {describe_options(accepted)}")


def describe_options(accepted: Sequence[str]) -> str:
    """'It takes --image-size, --limit and --data-option NAME=VALUE for NAME in: seed, ...' (progress left out)."""
    flags = [OPTION_FLAGS[name] for name in accepted if name in OPTION_FLAGS]
    named = [name for name in accepted if name not in OPTION_FLAGS and name != QUIET_OPTION]
    parts = [", ".join(flags)] if flags else []
    if named:
        parts.append(f"--data-option NAME=VALUE for NAME in: {', '.join(named)}")
    return f"It takes {' and '.join(parts)}." if parts else "It takes no options."


def check_limit(limit: int | None) -> int | None:
    """`limit` as a positive int, or None; UserError otherwise."""
    if limit is None:
        return None
    try:
        value = int(limit)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(limit).strip() != str(value):
        raise UserError(f"--limit must be a positive whole number of images per split, got {limit!r}")
    return value


def _shown(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)
