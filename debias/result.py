"""Running a fit from Python (`debias.run`, `debias.resume`) and reading its run folder back (`FitResult`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from debias.errors import UserError
from debias.run_folder import RunFolder
from debias.weight_files import SampleWeights


@dataclass(frozen=True)
class FitResult:
    """A finished fit: its run folder, and what a user takes from it.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run folder (weights.csv, config.json, checkpoint.pt, ...; see the README).
    summary : dict
        Its config.json: settings, dataset, weight statistics, results.

    Examples
    --------
    >>> import debias
    >>> result = debias.load_run("runs/celeba")            # doctest: +SKIP
    >>> result.table()                                      # doctest: +SKIP
               accuracy  worst_group_accuracy      worst_group
    uniform       0.948                 0.411  Male=1|label=1
    dbvae         0.941                 0.585  Male=1|label=1
    >>> sampler = result.weights.to_sampler(train_ids)     # doctest: +SKIP
    """

    run_dir: Path
    summary: dict

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> FitResult:
        """The result of the finished fit in `run_dir`; UserError when it is not a finished run folder."""
        folder = RunFolder(run_dir)
        if not folder.finished:
            if folder.fit_holder() is not None:
                raise folder.unfinished_error(f"call debias.load_run({str(folder.path)!r})")
            raise UserError(
                f"{folder.path} holds a fit that has not finished; "
                f"finish it with debias.resume({str(folder.path)!r}) or `debias fit --resume {folder.path}`"
            )
        return cls(folder.path, folder.config)

    @cached_property
    def _folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def config(self):
        """The fit's settings as a FitConfig (runtime settings at their defaults: config.json keeps them apart)."""
        return self._folder.fit_config

    @property
    def weights(self) -> SampleWeights:
        """weights.csv as SampleWeights: `.align(ids)`, `.to_sample_weight(ids)`, `.to_sampler(ids)`."""
        return self._folder.sample_weights

    @property
    def weights_frame(self) -> pd.DataFrame:
        """weights.csv as a DataFrame: sample_id, weight, log_density, label and the group_<attr> columns."""
        return self._folder.weights.copy()

    @property
    def latents(self) -> np.ndarray:
        """The final DB-VAE's latent means of the training rows (float32 [N, k], rows as in weights.csv)."""
        return self._folder.latents.copy()

    @property
    def results(self) -> dict:
        """Per model, its test-split results: accuracy, worst_group_accuracy, worst_group, groups."""
        return self.summary["results"]["test"]

    @property
    def uses_group_labels(self) -> bool:
        """Whether the fit's weighting read the true group labels (a label-based baseline)."""
        return bool(self.summary.get("uses_group_labels", False))

    def table(self, split: str = "test") -> pd.DataFrame:
        """One row per model: accuracy, worst-group accuracy and the worst group on `split` (test or valid)."""
        if split not in ("test", "valid"):
            raise UserError(f"split must be 'test' or 'valid', got {split!r}")
        rows = self.summary["results"][split]
        columns = ["accuracy", "worst_group_accuracy", "worst_group"]
        return pd.DataFrame({name: {c: figures[c] for c in columns} for name, figures in rows.items()}).T[columns]

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """Every model's predictions on `split` (test or valid): model, sample_id, prob, pred, label and the attributes."""
        return self._folder.predictions(split).copy()

    def __repr__(self) -> str:
        models = ", ".join(
            f"{name} {figures['accuracy']:.3f}/{figures['worst_group_accuracy']:.3f}"
            for name, figures in self.results.items()
        )
        return f"FitResult({str(self.run_dir)!r}, test accuracy/worst group: {models})"


def run(
    config=None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dataset=None,
    **settings,
) -> FitResult:
    """Run `debias fit` from Python and return its FitResult.

    Parameters
    ----------
    config : FitConfig, str or path, optional
        The settings: a FitConfig, a settings file (TOML or JSON) or a previous run's config.json
        (or its folder), as `debias fit --config`. Default: every default.
    out : path, optional
        The run folder (default: a new folder under runs/).
    overwrite : bool
        Allow writing into an existing, non-empty run folder.
    progress : bool
        Progress bars (False: nothing is printed).
    dataset : debias.data.Dataset, optional
        Data already loaded, instead of loading `config.data`.
    **settings
        Settings on top of `config`, named as in config.json or by their flag:
        `epochs=2, weighting="groups", groups="Male", root="~/data/celeba", limit=500, seed=1`.

    Returns
    -------
    FitResult

    Raises
    ------
    debias.UserError for settings or data that cannot work (one message saying what to do).

    Examples
    --------
    >>> import debias
    >>> result = debias.run(limit=64, epochs=1, image_size=32, latent_dim=4, batch_size=32,
    ...                     models="uniform", out="runs/example", overwrite=True, progress=False)
    >>> sorted(result.results), round(float(result.weights_frame["weight"].mean()), 6)
    (['dbvae', 'uniform'], 1.0)
    """
    from debias.fit import FitConfig, run_fit
    from debias.fit.settings_file import config_from_file, config_from_settings

    if config is None:
        base = FitConfig()
    elif isinstance(config, FitConfig):
        base = config
    elif isinstance(config, (str, os.PathLike)):
        base = config_from_file(config)
    else:
        raise UserError(f"config must be a FitConfig or the path of a settings file, got {type(config).__name__}")
    final = config_from_settings(settings, "debias.run()", base=base) if settings else base
    summary = run_fit(final, out=out, overwrite=overwrite, progress=progress, dataset=dataset)
    return FitResult(Path(summary["run_dir"]), summary)


def resume(run_dir: str | os.PathLike, progress: bool = True) -> FitResult:
    """Continue a stopped fit (Ctrl-C, a crash) from its last checkpoint with its own settings; its FitResult.

    Examples
    --------
    >>> import debias
    >>> result = debias.resume("runs/celeba")   # doctest: +SKIP
    """
    from debias.fit import resume_fit

    summary = resume_fit(run_dir, progress=progress)
    return FitResult(Path(summary["run_dir"]), summary)


def load_run(run_dir: str | os.PathLike) -> FitResult:
    """The FitResult of a finished run folder (FitResult.load).

    Examples
    --------
    >>> import debias
    >>> debias.load_run("runs/celeba").results["dbvae"]["worst_group_accuracy"]   # doctest: +SKIP
    0.585
    """
    return FitResult.load(run_dir)


__all__ = ["FitResult", "load_run", "resume", "run"]
