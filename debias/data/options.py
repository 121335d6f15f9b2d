"""A loader's keyword options, checked before the call: a wrong one is one UserError that names it
the way the user typed it (its flag, or `--data-option NAME=VALUE`), says why it does not apply to
this kind of dataset, suggests the closest option that does and lists them all.

Loaders take no `**kwargs`: an option nobody reads would be a setting the user believes in and
the fit ignores.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from debias.data.columns import closest
from debias.errors import UserError
from debias.settings import declared, setting


@dataclass(frozen=True)
class DataFlags:
    """The loader options that have a flag of their own on `debias fit`; every other is `--data-option NAME=VALUE`.

    Declared like every setting (debias.settings), so the command line, the checks of a resumed
    fit and the messages here share one spelling. runtime: how data is read, never which data.
    """

    root: str | None = setting(None, "--root", "Folder holding the dataset files (CelebA).")
    target: str | None = setting(None, "--target", "Attribute to predict (CelebA; default Blond_Hair).")
    groups: str | None = setting(
        None, "--groups", "Comma-separated attributes used only for evaluation (CelebA default: Male)."
    )
    limit: int | None = setting(None, "--limit", "Use only the first N images of each split.", low=1)
    cache_dir: str | None = setting(
        None, "--cache-dir", "Decoded-image cache (default $DEBIAS_CACHE or ~/.cache/debias).", runtime=True
    )
    workers: int | None = setting(
        None,
        "--workers",
        "Image-decoding processes for the first pass (default: CPU count, at most 8).",
        runtime=True,
        low=0,
    )


# Loader option -> the `debias fit` flag that sets it (image_size is a setting of the fit itself).
OPTION_FLAGS = {**{item.name: item.setting.flag for item in declared(DataFlags)}, "image_size": "--image-size"}
# Options that change how data is read, never which data: a resumed fit may use others.
RUNTIME_OPTIONS = tuple(item.name for item in declared(DataFlags) if item.setting.runtime)
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
