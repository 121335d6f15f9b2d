"""The HTML pages' jinja2 environment: the templates of debias/report/templates and the filters that format numbers."""

from __future__ import annotations

import jinja2
from markupsafe import Markup, escape

from debias.paired import SIGNIFICANCE, format_p
from debias.report.pictures import short_group

MISSING = "–"


def _pct(x, digits: int = 1) -> str:
    return MISSING if x is None else f"{100 * x:.{digits}f}%"


def _interval(pair) -> str:
    """'[78.8, 88.4]': an accuracy interval in percent, the % sign left to the value beside it."""
    if not pair or pair[0] is None:
        return MISSING
    return f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def _points(x) -> str:
    """A difference of two accuracies in percentage points, signed: '+2.4', '−1.0', '0.0'."""
    if x is None:
        return MISSING
    value = round(100 * x, 1)
    return f"+{value:.1f}" if value > 0 else f"−{abs(value):.1f}" if value < 0 else "0.0"


def _p(p) -> Markup:
    """'p = 0.41' muted when not significant, plain when it is."""
    if p is None:
        return Markup(MISSING)
    css = "sig" if p < SIGNIFICANCE else "ns"
    return Markup('<span class="{}">{}</span>').format(css, format_p(p))


def environment() -> jinja2.Environment:
    """The templates with autoescaping, strict undefined names and the number filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("debias.report", "templates"),
        autoescape=True,  # the templates end in .j2, which select_autoescape would not match
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = lambda x, digits=2: MISSING if x is None else f"{x:.{digits}f}"
    env.filters["short"] = short_group
    env.filters["sig"] = lambda x, digits=3: MISSING if x is None else f"{x:.{digits}g}"
    env.filters["interval"] = _interval
    env.filters["points"] = _points
    env.filters["p"] = _p
    # Escape first, then allow a line break after each '|' of a group name.
    env.filters["breakable"] = lambda name: Markup("|<wbr>").join(escape(str(name)).split("|"))
    return env
