"""The weighting strategies by name: every fact about a strategy in its one `Strategy` entry.

An entry says what a strategy reads (the DB-VAE's latent means or a user's features, the early
classifier's errors, the true group labels), which WeightingSettings fields it reads (their
defaults and ranges are declared once, in debias.weighting.settings), whether `--weighting auto`
tries it, and what the report says about its weights (`Caption`). Every other room asks the
registry: the command line's choices, auto's candidates, the checks of a fit's settings, the
report's captions, `debias weights`, `weights_from_features`.

A strategy is added by one call, `register_strategy(...)`; the built-in ones are registered in
debias.weighting.strategies. The registry imports no torch, so the settings and the command line
load without the training stack: a strategy's log-weights function is given as a function or
as "module:function", imported on first use.
"""

from __future__ import annotations

import importlib
import string
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from debias.settings import declared
from debias.weighting.settings import WeightingSettings

if TYPE_CHECKING:
    import torch

    from debias.weighting.compute import WeightingInputs

# Runs recorded before there were strategies to choose from used the paper's histograms.
LEGACY_STRATEGY = "histogram"

# What the report says about weights that do not read the DB-VAE's latent means.
NOT_LATENT_ROLE = (
    "These weights do not read the DB-VAE's latent space: the pictures below show what the DB-VAE model "
    "learned while drawing by them, not how the weights were made."
)
LATENT_ROLE = (
    "The weights are read off the DB-VAE's latent means: if the reconstructions all look alike, the "
    "weights cannot tell the images apart either."
)


@dataclass(frozen=True)
class Caption:
    """What the report says about a strategy's weights. `{field}` in a sentence is the run's value of that
    WeightingSettings field (`{alpha:g}`), `{errors}` the clause on the early classifier's errors.

    how             one sentence: what the weights are computed from
    large_weights   what the images with large weights are (caption of the thumbnails)
    latent_role     what the DB-VAE's reconstructions and traversals mean for these weights
                    (empty: LATENT_ROLE or NOT_LATENT_ROLE, by whether the strategy reads the latents)
    traversal_axes  the end of the traversal caption: how these axes relate to the weights
                    (empty: a generic clause, by whether the strategy reads the latents)
    measured        where the strategy was measured to help and where to fail (BENCHMARKS.md), for the
                    report to say beside its weights (empty: not measured across the testbeds)
    """

    how: str
    large_weights: str
    latent_role: str = ""
    traversal_axes: str = ""
    measured: str = ""


def _resolve(target: Callable | str) -> Callable:
    """A function, or the one "module:function" names (imported now)."""
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Strategy:
    """A named weighting strategy: the scored rows' WeightingInputs -> unnormalized log-weights [rows].

    log_weights        (inputs, settings) -> float64 tensor [rows], or "module:function" naming it
    description        one line, for `debias.available_strategies()`
    caption            what the report says about its weights
    reads_latents      it reads WeightingInputs.latents: the DB-VAE's latent means, or the features
                       given to weights_from_features (a strategy that does not can go without them)
    needs_errors       it reads the early classifier's errors (WeightingInputs.errors)
    needs_groups       it reads the true group of every row (WeightingInputs.groups): not label-free
    scores_every_row   it balances labels, so it scores negatives too in face detection
    reads              the WeightingSettings fields it reads, besides `strategy` and `cap` (every one's)
    in_auto_by_default `--weighting auto` tries it unless --auto-strategies says otherwise
    file_stem          the name of a `debias weights` file of it, formatted with the settings
                       ("alpha{alpha:g}-bins{bins}-{combine}"); empty: the strategy's name and the
                       settings changed from the fit's
    sharded            (this process's latents, scored rows in all, comm, settings) -> this
                       process's log-weights, for a strategy computed from every process's rows by
                       collectives (debias.weighting.sharded); None: every process gathers all latents
    """

    name: str
    log_weights: Callable | str
    description: str
    caption: Caption
    reads_latents: bool
    needs_errors: bool = False
    needs_groups: bool = False
    scores_every_row: bool = False
    reads: tuple[str, ...] = ()
    in_auto_by_default: bool = False
    file_stem: str = ""
    sharded: Callable | str | None = None

    def __call__(self, inputs: WeightingInputs, settings: WeightingSettings) -> torch.Tensor:
        """Unnormalized log-weights of the rows in `inputs`; ValueError when an input it needs is missing."""
        if self.needs_errors and inputs.errors is None:
            raise ValueError(
                f"weighting strategy {self.name!r} needs the early classifier's errors on the training split (WeightingInputs.errors)"
            )
        if self.needs_groups and inputs.groups is None:
            raise ValueError(
                f"weighting strategy {self.name!r} needs the true group of every training row (WeightingInputs.groups)"
            )
        return _resolve(self.log_weights)(inputs, settings)

    def sharded_log_weights(self, local_latents, total_rows: int, comm, settings: WeightingSettings):
        """This process's log-weights from its latents, the histograms (or other sums) reduced over all processes."""
        return _resolve(self.sharded)(local_latents, total_rows, comm, settings)

    @property
    def latent_role(self) -> str:
        """The caption's sentence on what the DB-VAE's pictures mean for these weights."""
        return self.caption.latent_role or (LATENT_ROLE if self.reads_latents else NOT_LATENT_ROLE)

    @property
    def traversal_axes(self) -> str:
        """The end of the traversal caption."""
        default = (
            "the latent means the strategy reads" if self.reads_latents else "these axes play no part in the weights"
        )
        return self.caption.traversal_axes or default


# name -> Strategy, in the order `--weighting` lists them
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, log_weights: Callable | str, **facts) -> Strategy:
    """Make `log_weights` available as `--weighting NAME`, with the facts of `Strategy` (keywords); returns the entry.

    ValueError for a name already taken, a setting that is no WeightingSettings field, or a
    caption that names one.
    """
    if name in STRATEGIES:
        raise ValueError(f"a weighting strategy named {name!r} is already registered")
    strategy = Strategy(name, log_weights, **facts)
    fields = set(WeightingSettings.__dataclass_fields__)
    unknown = [s for s in strategy.reads if s not in fields]
    sentences = [strategy.caption.how, strategy.caption.large_weights, strategy.latent_role, strategy.traversal_axes]
    texts = [*sentences, strategy.file_stem]
    named = {field.split(".")[0] for text in texts for _, field, _, _ in string.Formatter().parse(text) if field}
    unknown += sorted(named - fields - {"errors"})
    if unknown:
        raise ValueError(f"strategy {name!r} names settings that WeightingSettings lacks: {', '.join(unknown)}")
    STRATEGIES[name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    """The entry of strategy `name`; ValueError listing the strategies when there is none."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown weighting strategy {name!r}; the strategies are: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def needs_errors(strategy: str) -> bool:
    """Whether `strategy` reads the early classifier's errors (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].needs_errors


def needs_groups(strategy: str) -> bool:
    """Whether `strategy` reads the true group labels of the training rows (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].needs_groups


def reads_latents(strategy: str) -> bool:
    """Whether `strategy` reads the DB-VAE's latent means (False for unknown names and auto)."""
    return strategy in STRATEGIES and STRATEGIES[strategy].reads_latents


def auto_candidates() -> tuple[str, ...]:
    """The strategies `--weighting auto` tries unless --auto-strategies says otherwise, in registry order."""
    return tuple(name for name, strategy in STRATEGIES.items() if strategy.in_auto_by_default)


def caption_values(settings: WeightingSettings, errors: str = "") -> dict:
    """The values a `Caption` or `file_stem` is formatted with: the settings' fields and the errors clause."""
    return {**asdict(settings), "errors": errors}


def unread_settings(strategies: Iterable[str], names: Iterable[str]) -> list[str]:
    """The WeightingSettings fields among `names` that none of `strategies` reads (unknown strategies read none)."""
    read = {"strategy", "cap"}.union(*(STRATEGIES[s].reads for s in strategies if s in STRATEGIES))
    return [name for name in names if name not in read]


def _given_flag(item) -> str:
    """The option a user gives to change this setting: for an on/off pair, the side away from the default."""
    flag = item.setting.flag
    if "/" not in flag:
        return flag
    on, off = flag.split("/")
    return off if item.field.default else on


def unread_settings_problem(strategies: Iterable[str], names: Iterable[str]) -> str | None:
    """One sentence refusing the settings among `names` that none of `strategies` reads (None when all are read)."""
    strategies = list(strategies)
    unread = unread_settings(strategies, names)
    if not unread:
        return None
    flags = {item.name: _given_flag(item) for item in declared(WeightingSettings)}
    parts = []
    for name in unread:
        readers = [s.name for s in STRATEGIES.values() if name in s.reads]
        parts.append(f"{flags[name]} (read by {', '.join(readers)})")
    given = " and ".join(strategies) if len(strategies) < 3 else ", ".join(strategies)
    return (
        f"the weighting here is {given}, which does not read {', '.join(parts)}: "
        f"pick a strategy that reads it with --weighting, or drop {' '.join(flags[n] for n in unread)}"
    )
