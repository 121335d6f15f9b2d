"""Settings from a file (`debias fit --config FILE`) or from keywords (`debias.run(epochs=2, ...)`).

A settings file is TOML or JSON. Its keys are named as in a run's config.json ("settings": epochs,
batch_size, weighting.alpha, data_options.root) or by their flag (lr, joint-dims, root, groups),
so a previous run's config.json works as it is (its "settings" are read) and so does a
hand-written file:

    # fit.toml
    data = "celeba"
    root = "~/data/celeba"
    groups = "Male"
    epochs = 6
    weighting = "errors+joint"
    errors-upweight = 10

Every value is checked like the command line's (debias.fit.validate); a key that names no setting
is one UserError with the closest name.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from debias.data.columns import closest, parse_names
from debias.data.options import QUIET_OPTION, DataFlags
from debias.errors import UserError
from debias.fit.config import FitConfig
from debias.run_dir import CONFIG
from debias.settings import base_type, declared, replace_at
from debias.weighting import WeightingSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

HOW_KEYS_ARE_NAMED = (
    "settings are named as in a run's config.json (epochs, batch_size, weighting.alpha, data_options.root) "
    "or by their flag (lr, joint-dims, root)"
)


def _key(name: str) -> str:
    """'--joint-dims' -> 'joint_dims', '--amp/--no-amp' -> 'amp'."""
    return name.split("/")[0].lstrip("-").replace("-", "_")


def _known_keys() -> dict[str, tuple[str, ...]]:
    """Every accepted key -> its path in FitConfig.to_dict()'s nesting."""
    keys: dict[str, tuple[str, ...]] = {}
    for item in declared(FitConfig):
        keys[item.name] = item.path
        if item.setting.flag:
            keys[_key(item.setting.flag)] = item.path
    for item in declared(DataFlags):
        keys[item.name] = ("data_options", item.name)
    keys.pop("weighting", None)  # --weighting names the strategy; a "weighting" table is handled apart
    return keys


def nest_settings(values: dict, source: str) -> dict:
    """Flat or nested settings (config.json names or flag names) -> the nesting of FitConfig.to_dict().

        nest_settings({"epochs": 2, "weighting": "joint", "joint-dims": 8, "root": "~/celeba"}, "fit.toml")
        # {"epochs": 2, "weighting": {"strategy": "joint", "joint_dims": 8}, "data_options": {"root": "~/celeba"}}

    UserError naming `source`, the key and the closest known name for a key that is no setting.
    """
    keys = _known_keys()
    weighting_names = {f.name for f in fields(WeightingSettings)}
    nested: dict = {}

    def put(path: tuple[str, ...], value) -> None:
        node = nested
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value

    def unknown(key: str, known) -> UserError:
        suggestion = closest(_key(key.rpartition(".")[2]), list(known))
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        return UserError(f"{source}: {key!r} is not a setting{hint}; {HOW_KEYS_ARE_NAMED}")

    for key, value in values.items():
        name = _key(str(key))
        if name == "weighting" and isinstance(value, dict):
            for inner, inner_value in value.items():
                if _key(inner) not in weighting_names:
                    raise unknown(f"weighting.{inner}", weighting_names)
                put(("weighting", _key(inner)), inner_value)
        elif name == "weighting":
            put(("weighting", "strategy"), value)
        elif name == "data_options" and isinstance(value, dict):
            # Any loader option: the loader checks them against what it takes (debias.data.options).
            for inner, inner_value in value.items():
                put(("data_options", _key(inner)), inner_value)
        elif name in keys:
            put(keys[name], value)
        else:
            raise unknown(str(key), [*keys, "weighting", "data_options"])
    return nested


def config_from_settings(values: dict, source: str, base: FitConfig | None = None) -> FitConfig:
    """`base` (default FitConfig()) with flat or nested `values` on top (see nest_settings).

        config_from_settings({"epochs": 2, "weighting": "joint"}, "keywords")
        config_from_settings({"seed": 1}, "keywords", base=config_from_file("runs/x/config.json"))

    Data options are merged into base's; every other value replaces base's. UserError for a key
    that is no setting; the values themselves are checked by debias.fit.validate.
    """
    base = FitConfig() if base is None else base
    nested = nest_settings(values, source)
    paths: dict[tuple[str, ...], object] = {}
    for key, value in nested.items():
        if key == "weighting":
            paths.update({("weighting", name): _tuple(v) for name, v in value.items()})
        elif key != "data_options":
            paths[(key,)] = _tuple(value)
    config = replace_at(base, _names_of(paths))
    options = {k: v for k, v in nested.get("data_options", {}).items() if k != QUIET_OPTION}
    return replace(config, data_options={**base.data_options, **options}) if options else config


def _tuple(value):
    # JSON and TOML have lists, and "a,b" is how the command line gives several names; settings
    # with several names are tuples (frozen, comparable).
    return tuple(value) if isinstance(value, list) else value


def _names_of(paths: dict[tuple[str, ...], object]) -> dict[tuple[str, ...], object]:
    """Settings that take several names ("models": "uniform,oracle") split like their command-line option."""
    many = {item.path for item in declared(FitConfig) if base_type(item.hint)[2]}
    return {
        path: tuple(parse_names(value)) if path in many and isinstance(value, str) else value
        for path, value in paths.items()
    }


def read_settings_file(path: str | Path) -> dict:
    """The settings a TOML or JSON file holds; a run's config.json (or its run folder) gives its "settings".

    UserError when the file is missing, does not parse, or holds no table of settings.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CONFIG
    if not path.is_file():
        raise UserError(
            f"--config {path} does not exist; pass a TOML or JSON file of settings, or a run's {CONFIG} (or its folder)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --config {path} ({exc})") from None
    if path.suffix.lower() == ".toml":
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"--config {path} is not valid TOML ({exc})") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"--config {path} is not valid JSON ({exc.msg} at line {exc.lineno}); a .toml file is read as TOML"
            ) from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path} must hold a table of settings, got {type(values).__name__}")
    if isinstance(values.get("settings"), dict):  # a run's config.json: its resolved settings
        values = values["settings"]
    return values


def config_from_file(path: str | Path) -> FitConfig:
    """The FitConfig a settings file describes (read_settings_file, then config_from_settings).

    config = config_from_file("runs/x/config.json")   # the settings of run x
    config = config_from_file("fit.toml")
    """
    return config_from_settings(read_settings_file(path), f"--config {path}")


__all__ = ["config_from_file", "config_from_settings", "nest_settings", "read_settings_file"]
