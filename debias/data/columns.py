"""Checking user-given column/attribute names against the available ones, with a closest-match hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from debias.errors import UserError


def parse_names(value: str | Iterable[str] | None) -> list[str]:
    """Names from "Male,Young", ["Male", "Young"] or None (no names), stripped, empty ones dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    names = []
    for item in value:
        names.extend(part.strip() for part in str(item).split(","))
    return [name for name in names if name]


def require_names(requested: Sequence[str], available: Sequence[str], what: str, source: str) -> None:
    """Raise UserError for the first name in `requested` that is not in `available`.

    `what` names the option ("--target attribute"), `source` where the valid names come from; the
    message lists the valid names and suggests the closest one (difflib), ignoring case.
    """
    for name in requested:
        if name in available:
            continue
        close = closest(name, available)
        hint = f" Did you mean {close!r}?" if close else ""
        valid = ", ".join(available) if available else "(none)"
        raise UserError(f"unknown {what} {name!r}.{hint} Valid names (from {source}): {valid}")


def closest(name: str, available: Sequence[str]) -> str | None:
    """The name in `available` closest to `name` (difflib ratio >= 0.6, ignoring case), or None."""
    by_lower = {a.lower(): a for a in available}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None
