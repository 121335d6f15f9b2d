"""`RunFolder`: the one reader and writer of a run folder's files, each read and checked once.

Every command that reads a run (`debias report`, `debias weights`, `debias fit --resume`, the
Python API's `FitResult`) reads it through a RunFolder, so a file means the same everywhere:
sample ids are text, weights.csv passes `SampleWeights.load`'s checks, latents.npy and
early_probs.npy have one row per training sample, checkpoint.pt is read with
`torch.load(weights_only=True)` and its format checked. A problem is one UserError naming the
file and what to do. Every file a command writes into a run folder goes through `write_*`,
which records it in files.json (debias.run_dir), so a later `debias fit --overwrite` removes
exactly what debias wrote.

    folder = RunFolder("runs/x")
    folder.config["settings"]["epochs"]      # config.json, format version checked
    folder.weights["weight"]                 # weights.csv as a checked DataFrame
    folder.latents.shape                     # (rows of weights.csv, latent_dim)
    folder.predictions("test")               # predictions_test.csv, sample_id as text
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from debias import io, locks
from debias.errors import UserError
from debias.run_dir import (
    BY_EARLIER,
    BY_FIT,
    BY_WEIGHTS,
    CHECKPOINT,
    CONFIG,
    EARLY_PROBS,
    HISTORY,
    LATENTS,
    LOCK,
    WEIGHTS,
    WEIGHTS_RECORD_KEYS,
    check_format_version,
    debias_files,
    file_digest,
    is_run_folder,
    lock_run_folder,
    predictions_file,
    read_json_object,
    read_record,
    unchanged,
    write_record,
)
from debias.weight_files import SampleWeights, read_weights_frame, write_weights
from debias.weighting import AUTO

# Keys checkpoint.pt must hold (debias.fit.checkpoint.checkpoint_state writes them).
CHECKPOINT_KEYS = ("settings", "dataset", "epochs_done", "models", "optimizers", "history", "rng")
PREDICTION_COLUMNS = ("model", "label", "pred")


@dataclass(frozen=True)
class WeightsOrigin:
    """Who wrote a run's weights.csv as it is now.

    by         "debias fit", "debias weights" (`--out RUN/weights.csv --overwrite`), or None when
               the file was changed since debias wrote it
    weighting  the WeightingSettings (as a dict) `debias weights` used; None otherwise
    """

    by: str | None
    weighting: dict | None = None


class RunFolder:
    """A run folder written by `debias fit`: its files read and checked once each, and written with a record.

    Reading never changes the folder; a property reads its file on first use and keeps it. Every
    problem is a UserError naming the file and what to do.
    """

    def __init__(self, path: str | os.PathLike, recording: bool = True):
        """The run folder at `path` (nothing is read yet); `recording=False` writes without keeping files.json."""
        self.path = Path(path)
        self.recording = recording
        self._record: dict[str, dict] | None = None
        self._predictions: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @classmethod
    def beside(cls, target: Path) -> RunFolder | None:
        """The run folder `target` would be written into, or None when its folder holds no run."""
        folder = Path(target).parent
        return cls(folder) if folder.is_dir() and is_run_folder(folder) else None

    # -- config.json and what the fit recorded in it

    @cached_property
    def config(self) -> dict:
        """config.json as a dict, after checking that this debias can read the folder.

        UserError when the folder or its config.json is missing, the JSON is damaged, or the run
        format differs from RUN_FORMAT_VERSION.
        """
        if not self.path.is_dir():
            raise UserError(f"run folder {self.path} does not exist; pass a folder written by `debias fit`")
        path = self.path / CONFIG
        if not path.is_file():
            raise UserError(f"{self.path} has no {CONFIG}, so it is not a `debias fit` run folder")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); the run folder is damaged"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path} ({exc}); the run folder is damaged") from None
        if not isinstance(config, dict):
            raise UserError(f"{path} does not hold a JSON object; the run folder is damaged")
        check_format_version(config.get("format_version"), path, config.get("debias_version"))
        return config

    @property
    def settings(self) -> dict:
        """config.json's "settings" (what the fit trains); UserError when it has none."""
        settings = self.config.get("settings")
        if not isinstance(settings, dict):
            raise UserError(
                f"{self.path / CONFIG} has no settings, so it was not written by `debias fit` or is damaged; "
                f"rerun the fit (`debias fit --out NEW_FOLDER`)"
            )
        return settings

    @property
    def finished(self) -> bool:
        """Whether the fit finished (config.json holds results, written last of all)."""
        return "results" in self.config

    def fit_holder(self) -> dict | None:
        """Who holds the folder's lock (debias.locks) when a live fit does, else None."""
        return locks.live_holder(self.path / LOCK)

    def unfinished_error(self, then: str | None = None, missing: list[str] | None = None) -> UserError:
        """The UserError for a fit that has not finished: still running (and by whom), or stopped.

        `then`: what to do once it has finished ("run `debias report RUN`"); `missing`: the files it lacks.
        """
        holder = self.fit_holder()
        if holder is not None:
            after = f"{then} when it has finished" if then else "wait until it has finished"
            return UserError(f"the fit in {self.path} is still running ({locks.describe_holder(holder)}); {after}")
        lacking = ", ".join(missing) if missing else "all its files"
        return UserError(
            f"the fit in {self.path} did not finish (it was stopped before writing {lacking}). "
            f"Continue it with `debias fit --resume {self.path}`" + (f", then {then}" if then else " first")
        )

    def require(self, *names: str, then: str | None = None) -> None:
        """UserError unless every file of `names` is there: for an unfinished fit, how to finish it first."""
        missing = [name for name in names if not (self.path / name).is_file()]
        if not missing:
            return
        if not self.finished:
            raise self.unfinished_error(then, missing)
        raise UserError(
            f"{self.path} lacks {', '.join(missing)}, so it is not a complete `debias fit` run folder; "
            "rerun the fit or pick another folder"
        )

    @property
    def group_columns(self) -> list[str]:
        """The attributes that define the evaluation groups (config.json dataset.group_columns)."""
        columns = (self.config.get("dataset") or {}).get("group_columns", [])
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise UserError(f"{self.path / CONFIG}: dataset.group_columns must be a list of names; rerun `debias fit`")
        return columns

    @property
    def vae_on_all(self) -> bool:
        """Whether the VAE trained on every image (else on positives only: face detection)."""
        value = (self.config.get("dataset") or {}).get("vae_on_all")
        if not isinstance(value, bool):
            raise UserError(
                f"{self.path / CONFIG}: dataset.vae_on_all must be true or false, got {value!r}; "
                "it was not written by `debias fit`"
            )
        return value

    @property
    def training_rows(self) -> int | None:
        """The training split's size config.json records (None when it records none)."""
        rows = ((self.config.get("dataset") or {}).get("sizes") or {}).get("train")
        return rows if isinstance(rows, int) and not isinstance(rows, bool) and rows > 0 else None

    @cached_property
    def fit_config(self):
        """The fit's settings as a FitConfig (config.json's "settings")."""
        return _fit_config(self.settings, self.path / CONFIG)

    @cached_property
    def weighting(self):
        """The WeightingSettings the fit's weights came from (`--weighting auto` replaced by its choice)."""
        settings = self.fit_config.weighting
        if settings.strategy != AUTO:
            return settings
        config = self.config
        chosen = config.get("weighting_strategy") or (config.get("weighting_selection") or {}).get("chosen")
        if chosen is None:
            raise UserError(
                f"{self.path / CONFIG}: the fit chose its weighting strategy by measurement but did not record the "
                "choice; rerun `debias fit`"
            )
        return replace(settings, strategy=chosen)

    # -- the data files

    def _damaged(self, name: str, problem: str) -> UserError:
        return UserError(f"{self.path / name} {problem}; the run folder is damaged: rerun `debias fit`")

    @cached_property
    def weights(self) -> pd.DataFrame:
        """weights.csv, checked as `SampleWeights.load` checks it, with one row per training sample.

        Columns: sample_id (text), weight (float64, finite, positive), and as written log_density,
        label (0/1 when present) and the group_<attr> columns.
        """
        path = self.path / WEIGHTS
        self.require(WEIGHTS)
        restore = "restore the file debias wrote, or rerun `debias fit`"
        try:
            frame = read_weights_frame(path)
        except UserError as exc:
            raise UserError(f"{exc}. The run's weights.csv is damaged: {restore}") from None
        expected = self.training_rows
        if expected is not None and len(frame) != expected:
            raise UserError(
                f"{path} has {len(frame)} rows but the run's training split has {expected} (config.json); it must "
                f"hold one row per training sample: {restore}"
            )
        if "label" in frame.columns:
            labels = pd.to_numeric(frame["label"], errors="coerce")
            if not labels.isin((0, 1)).all():
                raise UserError(
                    f"{path}: the `label` column must hold 0 or 1 in every row; it was not written by debias"
                )
            frame["label"] = labels.astype(np.int64)
        return frame

    @property
    def sample_weights(self) -> SampleWeights:
        """weights.csv as SampleWeights: `.align(ids)`, `.to_sample_weight(ids)`, `.to_sampler(ids)`."""
        frame = self.weights
        return SampleWeights(frame["sample_id"].to_numpy(), frame["weight"].to_numpy(), source=str(self.path / WEIGHTS))

    def _rows(self) -> int:
        return self.training_rows if self.training_rows is not None else len(self.weights)

    def _array(self, name: str) -> np.ndarray:
        self.require(name)
        try:
            array = np.load(self.path / name, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise self._damaged(name, f"cannot be read ({exc})") from None
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
            raise self._damaged(name, "does not hold an array of numbers")
        return array

    @cached_property
    def latents(self) -> np.ndarray:
        """latents.npy: the final DB-VAE's latent means, one finite row per weights.csv row (float [N, k])."""
        latents = self._array(LATENTS)
        rows = self._rows()
        if latents.ndim != 2 or len(latents) != rows:
            raise self._damaged(
                LATENTS, f"has shape {latents.shape} but the training split has {rows} rows (one latent row each)"
            )
        if not np.isfinite(latents).all():
            raise self._damaged(LATENTS, "holds non-finite values")
        return latents

    @cached_property
    def early_probs(self) -> np.ndarray:
        """early_probs.npy: the early classifier's P(label = 1), one probability in [0, 1] per training row."""
        probs = self._array(EARLY_PROBS)
        rows = self._rows()
        if probs.shape != (rows,):
            raise self._damaged(EARLY_PROBS, f"has shape {probs.shape}; it must hold one probability per training row")
        if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()):
            raise self._damaged(EARLY_PROBS, "holds values that are not probabilities in [0, 1]")
        return probs.astype(np.float64)

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """predictions_<split>.csv: model, sample_id (text), label and pred (0/1), prob in [0, 1], the attr_* columns."""
        if split not in ("test", "valid"):
            raise UserError(f"split must be 'test' or 'valid', got {split!r}")
        if split not in self._predictions:
            self._predictions[split] = self._read_predictions(predictions_file(split))
        return self._predictions[split]

    def _read_predictions(self, name: str) -> pd.DataFrame:
        self.require(name)
        try:
            # Ids and attributes stay text as written ("007", "NA"); only empty cells are missing.
            frame = pd.read_csv(self.path / name, dtype={"sample_id": str}, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise self._damaged(name, f"cannot be read as CSV ({exc})") from None
        missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if missing:
            raise self._damaged(name, f"lacks the columns {missing}")
        if len(frame) == 0:
            raise self._damaged(name, "has no rows")
        frame["model"] = frame["model"].astype(str)
        for column in ("label", "pred"):
            values = pd.to_numeric(frame[column], errors="coerce")
            if not values.isin((0, 1)).all():
                raise self._damaged(name, f"has `{column}` values other than 0 and 1")
            frame[column] = values.astype(np.int64)
        if "prob" in frame.columns:
            prob = pd.to_numeric(frame["prob"], errors="coerce")
            if not prob.between(0, 1).all():
                raise self._damaged(name, "has `prob` values that are not probabilities in [0, 1]")
            frame["prob"] = prob.astype(np.float64)
        if "sample_id" in frame.columns and (frame["sample_id"].isna() | (frame["sample_id"] == "")).any():
            raise self._damaged(name, "has rows without a sample_id")
        absent = [c for c in self.group_columns if f"attr_{c}" not in frame.columns]
        if absent:
            raise self._damaged(name, f"lacks the group columns {absent} named in config.json")
        return frame

    @cached_property
    def history(self) -> pd.DataFrame:
        """history.csv: one row per model and epoch (model, epoch, losses, accuracies, weight statistics)."""
        self.require(HISTORY)
        try:
            frame = pd.read_csv(self.path / HISTORY)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise self._damaged(HISTORY, f"cannot be read as CSV ({exc})") from None
        if not {"model", "epoch"} <= set(frame.columns):
            raise self._damaged(HISTORY, "lacks the columns model and epoch")
        if not pd.api.types.is_integer_dtype(frame["epoch"]):
            raise self._damaged(HISTORY, "has epochs that are not whole numbers")
        return frame

    @cached_property
    def checkpoint(self) -> dict:
        """checkpoint.pt, read with torch.load(weights_only=True) and checked (format version, keys)."""
        import torch

        path = self.path / CHECKPOINT
        self.require(CHECKPOINT)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors have no common base class
            raise UserError(
                f"cannot read {path} with torch.load(weights_only=True) ({type(exc).__name__}); it is damaged or not a "
                "checkpoint of this debias. Start a new fit with --out NEW_FOLDER"
            ) from None
        if not isinstance(state, dict):
            raise UserError(f"{path} is not a debias checkpoint; start a new fit with --out NEW_FOLDER")
        check_format_version(state.get("format_version"), path, state.get("debias_version"))
        missing = [key for key in CHECKPOINT_KEYS if key not in state]
        if missing or not isinstance(state["models"], dict):
            raise UserError(
                f"{path} lacks {', '.join(missing) or 'its models'}; it cannot be read. Start a new fit with --out NEW_FOLDER"
            )
        return state

    @cached_property
    def checkpoint_config(self):
        """The settings checkpoint.pt was trained with, as a FitConfig."""
        try:
            settings = json.loads(self.checkpoint["settings"])
        except (TypeError, ValueError):
            settings = None
        return _fit_config(settings, self.path / CHECKPOINT)

    # -- who wrote weights.csv

    def weights_origin(self) -> WeightsOrigin:
        """Who wrote weights.csv as it is now: the fit, `debias weights` (with its settings), or neither."""
        path = self.path / WEIGHTS
        entry = self._entries().get(WEIGHTS)
        if entry is not None and entry.get("by") in (BY_FIT, BY_WEIGHTS):
            if not unchanged(path, entry):
                return WeightsOrigin(None)
            weighting = entry.get("weighting") if entry.get("by") == BY_WEIGHTS else None
            return WeightsOrigin(entry["by"], weighting if isinstance(weighting, dict) else None)
        # A run from before files.json: `debias weights --out RUN/weights.csv` left its record beside it.
        record = read_json_object(path.with_suffix(".json"))
        if record is not None and WEIGHTS_RECORD_KEYS <= record.keys() and isinstance(record["settings"], dict):
            return WeightsOrigin(BY_WEIGHTS, record["settings"])
        return WeightsOrigin(BY_FIT)

    # -- writing, each file recorded in files.json

    def _entries(self) -> dict[str, dict]:
        if self._record is None:
            record = read_record(self.path)
            # A run from before files.json: what debias wrote there is known by name (debias_files).
            self._record = (
                record if record is not None else {name: {"by": BY_EARLIER} for name in debias_files(self.path)}
            )
        return self._record

    def _note(self, name: str, entry: dict) -> None:
        if not self.recording:
            return
        entries = self._entries()
        if entries.get(name) != entry:
            entries[name] = entry
            write_record(self.path, entries)

    def _written(self, name: str, by: str, write, digest: bool = False, **details) -> Path:
        """Record `name` (before writing, so a write cut short is still known as debias's), write it, record its digest."""
        path = self.path / name
        self._note(name, {"by": by, **details})
        write(path)
        if digest and self.recording:
            self._note(name, {"by": by, "sha256": file_digest(path), **details})
        return path

    def write_json(self, name: str, data: dict, by: str = BY_FIT) -> Path:
        """Write `data` as JSON (atomically) and record it."""
        return self._written(name, by, lambda path: io.write_json(path, data))

    def write_text(self, name: str, text: str, by: str) -> Path:
        """Write `text` (atomically) and record it."""
        return self._written(name, by, lambda path: io.write_text(path, text))

    def write_csv(self, name: str, frame: pd.DataFrame, by: str = BY_FIT) -> Path:
        """Write a DataFrame as CSV (atomically) and record it."""
        return self._written(name, by, lambda path: io.write_csv(path, frame))

    def write_npy(self, name: str, array: np.ndarray, by: str = BY_FIT) -> Path:
        """Save a numpy array (atomically) and record it."""
        return self._written(name, by, lambda path: io.write_npy(path, array))

    def write_torch(self, name: str, state: dict, by: str = BY_FIT) -> Path:
        """torch.save `state` (atomically) and record it."""
        return self._written(name, by, lambda path: io.write_torch(path, state))

    def write_weights(self, name: str, *args, by: str = BY_FIT, weighting: dict | None = None, **kwargs) -> Path:
        """debias.weight_files.write_weights into the folder; the record keeps its digest (and `debias weights`' settings)."""
        details = {"weighting": weighting} if weighting is not None else {}
        return self._written(name, by, lambda path: write_weights(path, *args, **kwargs), digest=True, **details)

    @contextmanager
    def held(self) -> Iterator[RunFolder]:
        """Hold the folder's lock while a command other than a fit writes into it (UserError while a fit runs)."""
        lock = lock_run_folder(self.path)
        try:
            self._record = None  # read again under the lock
            yield self
        finally:
            lock.release()


@contextmanager
def output_folder(folder: str | os.PathLike) -> Iterator[RunFolder]:
    """Where a command other than a fit writes (`debias weights`, `debias report`): a RunFolder to write through.

    When `folder` holds a run, its lock is held meanwhile (UserError while a fit writes it) and what
    is written is recorded in its files.json; any other folder is written plainly.
    """
    folder = Path(folder)
    if not (folder.is_dir() and is_run_folder(folder)):
        yield RunFolder(folder, recording=False)
        return
    with RunFolder(folder).held() as run:
        yield run


def _fit_config(settings, source: Path):
    from debias.fit.config import FitConfig

    if not isinstance(settings, dict):
        raise UserError(f"{source} holds no settings; it was not written by `debias fit`. Start a new fit with --out")
    try:
        return FitConfig.from_dict(settings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserError(
            f"the settings saved in {source} cannot be read by this debias ({exc}); it comes from an incompatible "
            "version. Start a new fit with --out NEW_FOLDER"
        ) from None


__all__ = ["RunFolder", "WeightsOrigin", "output_folder"]
