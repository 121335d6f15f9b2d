"""Click options derived from the settings declarations (debias.settings), and parsing them back.

`debias fit` has one option per declared setting of FitConfig (weighting's included) and of the
dataset flags (debias.data.options.DataFlags); their names, help texts, types, choices and
defaults all come from the declarations, so a new setting needs no edit here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import click
from click.core import ParameterSource

from debias.errors import UserError
from debias.settings import Declared, base_type, declared, replace_at, value_at

_CLICK_TYPES = {int: int, float: float, str: str}


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _option(item: Declared, default) -> Callable:
    s = item.setting
    kind, optional, many = base_type(item.hint)
    kwargs: dict = {"help": s.help, "default": default, "show_default": default not in (None, ())}
    if s.metavar:
        kwargs["metavar"] = s.metavar
    if kind is bool:
        if "/" not in s.flag:
            kwargs["is_flag"] = True
        return click.option(s.flag, item.name, **kwargs)
    allowed = s.allowed()
    if many:
        # "a,b,c" -> ("a", "b", "c"); names are checked by validate(), which lists the choices.
        kwargs["default"] = ",".join(map(str, default)) if default else None
        kwargs["show_default"] = bool(default)
        kwargs.setdefault("metavar", "NAME[,NAME]")
        kwargs["callback"] = lambda ctx, param, value: _names(value)
        return click.option(s.flag, item.name, type=str, **kwargs)
    kwargs["type"] = (
        click.Choice([str(a) for a in allowed]) if allowed is not None and kind is str else _CLICK_TYPES[kind]
    )
    return click.option(s.flag, item.name, **kwargs)


def setting_options(
    cls: type,
    only: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    unset: str | None = None,
    replaced: dict[str, dict] | None = None,
) -> Callable:
    """Decorator: one click option per declared setting of `cls` (or those named in `only`, less `exclude`), in declaration order.

    `unset`: every option defaults to None (not given) instead of the declared default, and its help
    ends with this text ("Default: the fit's.") — for commands whose defaults come from elsewhere.
    `replaced`: setting name -> Setting fields this command declares otherwise (`debias weights`
    offers no `auto` among the strategies' choices: only a fit can resolve it).
    """
    defaults = cls()
    items = [i for i in declared(cls) if i.setting.flag and (not only or i.name in only) and i.name not in exclude]

    def decorate(func: Callable) -> Callable:
        for item in reversed(items):
            if replaced and item.name in replaced:
                item = Declared(item.path, item.field, replace(item.setting, **replaced[item.name]), item.hint)
            if unset is None:
                func = _option(item, value_at(defaults, item.path))(func)
            else:
                help_text = f"{item.setting.help.rstrip('.')}. {unset}"
                unset_item = Declared(item.path, item.field, replace(item.setting, help=help_text), item.hint)
                func = _option(unset_item, None)(func)
        return func

    return decorate


def settings_from_params(cls: type, params: dict, base=None):
    """An instance of `cls` (or `base`, replaced) with the values click parsed for its declared settings."""
    values = {}
    for item in declared(cls):
        if item.setting.flag and item.name in params:
            value = params[item.name]
            if base_type(item.hint)[2] and value is None:
                value = ()
            values[item.path] = value
    return replace_at(base if base is not None else cls(), values)


def explicit_params(ctx: click.Context) -> set[str]:
    """The parameters the user gave on the command line (not left at their defaults)."""
    return {name for name in ctx.params if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


def parse_data_options(pairs: tuple[str, ...]) -> dict:
    """`--data-option KEY=VALUE` pairs -> loader keyword options; numbers become int or float.

    parse_data_options(("spurious=hat", "spurious_rate=0.9"))  # {"spurious": "hat", "spurious_rate": 0.9}
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UserError(f"--data-option takes KEY=VALUE (for example spurious=hat), got {pair!r}")
        value = value.strip()
        for convert in (int, float):
            try:
                options[key] = convert(value)
                break
            except ValueError:
                continue
        else:
            options[key] = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return options
