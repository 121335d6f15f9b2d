"""The phases of a fit, in order: read top to bottom in `Fit._phases`.

1. data            load (or take) the dataset and check it suits the settings
2. run folder      config.json with "status": "running"
3. models          one Trainer per model, restored from checkpoint.pt when resuming
4. uniform         the baseline; its early predictions are the errors some strategies upweight
5. warm-up         the DB-VAE's first epochs, on uniform draws (--vae-warmup-steps; every model trains as many)
6. strategy        `--weighting auto` measures its candidates from the warmed-up DB-VAE (debias.fit.auto)
7. dbvae           the DB-VAE's remaining epochs, drawing by the strategy's weights
8. weights         weights.csv, latents.npy (and early_probs.npy) from the final DB-VAE
9. sampler, oracle the plain loop over weights.csv, and the group-balanced classifier
10. evaluation     predictions of every model on the validation and test splits
11. results        latent health, and config.json gets the results and "status": "complete", last of all

checkpoint.pt is written after every epoch of every model (debias.fit.checkpoint), so a fit
stopped anywhere continues with `debias fit --resume RUN` (debias.fit.resume) and ends with the
files an uninterrupted fit writes: every epoch's draw is seeded by (seed, epoch, model) and the
global torch RNG state is saved with each checkpoint.

Under torchrun (debias.distributed) every rank runs this same code on a DistContext: the models
train under DistributedDataParallel, each rank takes its share of every epoch's draw, latents and
predictions are gathered, and only rank 0 writes the run folder. With one process the context is
debias.distributed.SINGLE.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from debias import __version__, oserrors
from debias.data import Dataset, load_dataset
from debias.distributed import SINGLE, DistContext, session
from debias.errors import UserError
from debias.fit.auto import select_strategy
from debias.fit.checkpoint import Progress, checkpoint_state, dataset_fingerprint, describe_progress, restore
from debias.fit.config import MODELS, FitConfig, validate
from debias.fit.dataset_checks import check_dataset
from debias.fit.device import resolve_device
from debias.fit.draws import DRAWS, DensityDraw, FileDraw
from debias.fit.errors import CompileFailed, FitInterrupted, NonFiniteLoss
from debias.fit.evaluation import evaluate, predictions_frame, sharded_predict
from debias.fit.health import advice, latent_health
from debias.fit.tensorboard import HistoryBoard
from debias.fit.trainer import Trainer
from debias.groups import cell_weights
from debias.run_dir import (
    CHECKPOINT,
    CONFIG,
    EARLY_PROBS,
    HISTORY,
    LATENTS,
    RUN_FORMAT_VERSION,
    WEIGHTS,
    predictions_file,
    prepare_run_dir,
    remove_debias_files,
)
from debias.run_folder import RunFolder
from debias.weighting import AUTO, WeightingSettings, reads_latents
from debias.weighting.errors import early_error_rates
from debias.weights_check import check_weights


class Fit:
    """One fit into a run folder, new or resumed: trains what is left, checkpointing every epoch.

    Under DDP every rank runs it; only rank 0 (ctx.is_main) writes the run folder and shows progress.
    """

    def __init__(
        self,
        run_dir: Path,
        config: FitConfig,
        device: torch.device,
        progress: bool,
        ctx: DistContext = SINGLE,
        checkpoint: dict | None = None,
        created: str | None = None,
        resumed: bool = False,
    ):
        self.run_dir, self.config, self.device, self.ctx = run_dir, config, device, ctx
        self.folder = RunFolder(run_dir)  # rank 0 writes every file through it
        self.progress = progress and ctx.is_main
        self.checkpoint = checkpoint
        self.created = created or _dt.datetime.now().isoformat(timespec="seconds")
        self.state = Progress.from_checkpoint(checkpoint)
        self.saved_done = dict(self.state.done)  # epochs in checkpoint.pt, for the messages after a failure
        self.started = time.perf_counter()
        self.trainers: dict[str, Trainer] = {}
        self.dataset: Dataset | None = None
        self.fingerprint = ""
        # Whether the run folder describes this fit yet (config.json written by it, or a resumed run).
        self.resumable = resumed
        self.board: HistoryBoard | None = None  # --tensorboard, on rank 0
        self.weights_check: dict = {}  # the weighted models against uniform on validation (check_weights)

    def run(self, dataset: Dataset | None = None) -> dict:
        """Train what is left and write every file of the run folder; returns the config.json summary.

        `dataset`: the data, already loaded (else loaded from config.data and config.data_options).
        """
        try:
            return self._guarded(dataset)
        finally:
            if self.board is not None:
                self.board.close()

    def _guarded(self, dataset: Dataset | None) -> dict:
        try:
            return self._phases(dataset)
        except KeyboardInterrupt:
            raise FitInterrupted(self.run_dir, self._interrupted_message()) from None
        except NonFiniteLoss as exc:
            c = self.config
            # Every rank meets it at the same step (losses are averaged over the ranks, parameters are equal).
            raise self.ctx.shared_error(
                UserError(
                    f"{exc}; training stopped. {self._kept()} Hint: lower --lr (now {c.learning_rate:g}) or --beta "
                    f"(now {c.beta:g}), or cap the weights with --cap, and start a new fit (--out NEW_FOLDER)."
                )
            ) from None
        except CompileFailed as exc:
            raise self.ctx.shared_error(exc) from None
        except OSError as exc:
            # abspath, not resolve(): resolving a path that loops would raise an error of its own.
            if exc.filename is None or os.path.abspath(self.run_dir) not in map(
                str, Path(os.path.abspath(exc.filename)).parents
            ):
                raise
            raise UserError(
                f"cannot write {exc.filename}: {oserrors.reason(exc)}. {self._kept()} Free some space or fix the "
                f"folder's permissions, then continue with `debias fit --resume {self.run_dir}`."
            ) from None

    def _phases(self, dataset: Dataset | None) -> dict:
        # Each machine's first rank loads (and caches) the data before the others read the cache.
        self.dataset = self.ctx.local_main_first(lambda: self._checked_dataset(dataset))
        self._start_run_folder()
        self._build_trainers()
        self._train("uniform")
        self._train("dbvae", until=self.trainers["dbvae"].draw.warmup_epochs)
        self._choose_strategy()
        self._train("dbvae")
        final_weights = self._write_weights()
        self._train("sampler")
        self._train("oracle")
        results = self._evaluate()
        return self._finish(final_weights, results)

    # 1. data
    def _checked_dataset(self, dataset: Dataset | None) -> Dataset:
        config = self.config
        if dataset is None:
            dataset = load_dataset(
                config.data, image_size=config.image_size, progress=self.progress, **config.data_options
            )
        check_dataset(dataset, config)
        if config.vae_on is not None:
            dataset.vae_on_all = config.vae_on == "all"
        self.fingerprint = dataset_fingerprint(dataset)
        if self.checkpoint is not None and self.checkpoint["dataset"] != self.fingerprint:
            raise UserError(
                f"the data of {dataset.name} differ from those {self.run_dir} was trained on (other images, labels, "
                "splits, preprocessing or --limit); a fit can only be resumed on the same data. Restore the data, or "
                "start a new fit with --out NEW_FOLDER"
            )
        return dataset

    # 2. run folder
    def _start_run_folder(self) -> None:
        if self.ctx.is_main:
            if self.checkpoint is None:
                # A new fit (--overwrite) first removes what debias wrote for the run it replaces (a
                # stale checkpoint.pt beside the new config.json would make --resume continue the old
                # run; weights `debias weights` made from the old latents would pass for this run's),
                # and nothing else of the folder.
                remove_debias_files(self.run_dir)
                self.folder = RunFolder(self.run_dir)
            self.folder.write_json(CONFIG, self._config_record(status="running"))
            if self.config.tensorboard is not None:
                self.board = HistoryBoard(self.config.tensorboard)
        self.resumable = True

    # 3. models
    def _build_trainers(self) -> None:
        config, dataset = self.config, self.dataset
        # The DB-VAE is always trained: its latents make weights.csv. Strategies that use errors
        # read them from the uniform baseline, so it is trained for them even when not asked for.
        # The oracle needs group columns to balance.
        wanted = {"dbvae", *config.models} | ({"uniform"} if config.uses_errors else set())
        if not dataset.group_columns:
            wanted.discard("oracle")
        for name in (m for m in MODELS if m in wanted):
            draw = DRAWS[name](name, dataset, config, self.device, self.ctx)
            if isinstance(draw, FileDraw):
                draw.weights_file = self.run_dir / WEIGHTS
            self.trainers[name] = Trainer(draw)
        if self.checkpoint is not None:
            restore(self.checkpoint, self.trainers, self.run_dir / CHECKPOINT)
        self.state.done = {name: self.state.done.get(name, 0) for name in self.trainers}

    def _train(self, name: str, until: int | None = None) -> None:
        """Train model `name` from its next epoch to epoch `until` (default: its last)."""
        if name in self.trainers:
            self.trainers[name].train(self.progress, self.state.done[name] + 1, self._after_epoch, until)

    def _after_epoch(self, name: str, epoch: int, row: dict) -> None:
        if (
            name == "uniform"
            and self.config.uses_errors
            and self.state.early_probs is None
            and epoch >= self.config.weighting.errors_epoch
        ):
            self._take_early_errors(epoch)
        self.state.history.append(row)
        if self.board is not None:
            self.board.log(row)
        self.state.done[name] = epoch
        self._save_checkpoint()

    # 4. the uniform baseline's errors
    def _take_early_errors(self, epoch: int) -> None:
        """Keep the uniform baseline's training predictions after this epoch as JTT's early classifier.

        From `errors_epoch` on, the first epoch whose classifier errs less than always predicting the
        majority class (see early_error_rates); the last epoch's if none does, flagged in config.json.
        """
        trainer, train = self.trainers["uniform"], self.dataset.train
        probs = sharded_predict(
            trainer.model, train.images, self.config.eval_batch_size, self.device, trainer.amp, self.ctx
        )
        rates = early_error_rates(probs, train.labels)
        if rates["informative"] or epoch == self.config.epochs:
            self.state.early_probs = probs
            self.state.early_errors = {"epoch": epoch, **rates}

    # 6. strategy
    def _choose_strategy(self) -> None:
        if self.config.uses_errors and self.state.early_probs is None:
            raise UserError(
                f"{self.run_dir / CHECKPOINT} lacks the early classifier's predictions that the weighting strategy needs; "
                "start a new fit with --out NEW_FOLDER"
            )
        if self.config.weighting.strategy == AUTO and self.state.selection is None:
            dbvae = self.trainers["dbvae"]
            self.state.selection, head_start = select_strategy(
                self.dataset, self.config, self.device, self.state.early_probs, self.progress, self.ctx, dbvae
            )
            # The chosen candidate's short run is this DB-VAE's first weighted epochs: go on from there.
            dbvae.model.load_state_dict(head_start.model)
            dbvae.optimizer.load_state_dict(head_start.optimizer)
            for row in head_start.history:
                self.state.history.append(row)
                if self.board is not None:
                    self.board.log(row)
            self.state.done["dbvae"] = head_start.history[-1]["epoch"]
            torch.set_rng_state(head_start.rng)
            if head_start.cuda_rng is not None:
                torch.cuda.set_rng_state_all(head_start.cuda_rng)
            self._save_checkpoint()
            if self.ctx.is_main:
                self.folder.write_json(CONFIG, self._config_record(status="running"))
        draw = self.trainers["dbvae"].draw
        draw.weighting = self.resolved_weighting()
        draw.early_probs = self.state.early_probs

    def resolved_weighting(self) -> WeightingSettings:
        """The DB-VAE's weighting settings: the configured ones, with auto replaced by its choice."""
        weighting = self.config.weighting
        if weighting.strategy == AUTO:
            return replace(weighting, strategy=self.state.selection["chosen"])
        return weighting

    # 8. weights
    def _write_weights(self) -> dict[str, float]:
        draw: DensityDraw = self.trainers["dbvae"].draw
        # Recomputed even on a resumed fit: it is a deterministic function of the final DB-VAE.
        final = draw.refresh()
        if self.ctx.is_main:
            train = self.dataset.train
            self.folder.write_weights(
                WEIGHTS,
                train.sample_ids,
                draw.weights.cpu().numpy(),
                log_density=draw.log_density.cpu().numpy(),
                labels=train.labels,
                # The true groups ride along (group_<attr> columns): `debias weights` needs them for
                # the group strategies, and a pipeline can report per group from the file alone.
                groups=train.attributes[self.dataset.group_columns],
            )
            self.folder.write_npy(LATENTS, draw.latents.cpu().numpy().astype(np.float32))
            if self.state.early_probs is not None:
                self.folder.write_npy(EARLY_PROBS, np.asarray(self.state.early_probs, dtype=np.float64))
        return final

    # 10. evaluation
    def _evaluate(self) -> dict:
        results: dict = {}
        for split_name in ("valid", "test"):
            split = self.dataset.split(split_name)
            probs = {}
            for name, trainer in self.trainers.items():
                probs[name], results.setdefault(split_name, {})[name] = evaluate(
                    trainer.model, split, self.dataset, self.config.eval_batch_size, self.device, trainer.amp, self.ctx
                )
            if self.ctx.is_main:
                self.folder.write_csv(predictions_file(split_name), predictions_frame(split, probs))
            if split_name == "valid":
                self.weights_check = check_weights(probs, split, self.config.val_groups)
        if self.ctx.is_main:
            self.folder.write_csv(HISTORY, pd.DataFrame(self.state.history))
        return results

    # 11. results
    def _finish(self, final_weights: dict[str, float], results: dict) -> dict:
        self._save_checkpoint(complete=True)
        summary = self._config_record(status="complete")
        dbvae = self.trainers["dbvae"]
        health = latent_health(
            dbvae.model,
            self.dataset.test,
            dbvae.mean_image(),
            self.dataset.vae_on_all,
            self.dataset.group_columns,
            self.config.eval_batch_size,
            self.device,
            dbvae.amp,
        )
        health["advice"] = advice(
            health,
            self.config.beta,
            self.config.epochs,
            self.config.vae_warmup_steps,
            reads_latents(dbvae.draw.weighting.strategy),
        )
        train = self.dataset.train
        weights = self.trainers["dbvae"].draw.weights.cpu().numpy()
        summary.update(
            group_weights=cell_weights(weights, train.attributes, self.dataset.group_columns, train.labels),
            latent_health=health,
            weighting_strategy=self.trainers["dbvae"].draw.weighting.strategy,
            final_weights=final_weights,
            results=results,
            weights_check=self.weights_check,
            seconds=self._seconds(),
        )
        if self.ctx.is_main:
            self.folder.write_json(CONFIG, summary)  # last: a config.json with results means the run is complete
        summary["run_dir"] = str(self.run_dir)
        return summary

    def _config_record(self, status: str) -> dict:
        dataset = self.dataset
        record: dict = {
            "format_version": RUN_FORMAT_VERSION,
            "debias_version": __version__,
            "status": status,
            "created": self.created,
            "settings": self.config.to_dict(),
            # Whether a weighting of this fit read the true group labels: its weights are then a
            # label-based baseline, not debias's label-free estimate.
            "uses_group_labels": self.config.uses_group_labels,
            "runtime": self.config.runtime_dict(),
            "device": str(self.device),
            "torch_version": torch.__version__,
            "platform": platform.platform(),
            "dataset": {
                "name": dataset.name,
                "target": dataset.target,
                "group_columns": dataset.group_columns,
                "vae_on_all": dataset.vae_on_all,
                "sizes": {s: len(dataset.split(s)) for s in ("train", "valid", "test")},
                "info": dataset.info,
            },
        }
        if self.state.early_errors is not None:
            record["early_errors"] = self.state.early_errors
        if self.state.selection is not None:
            record["weighting_selection"] = self.state.selection
        if self.ctx.distributed:
            record["processes"] = self.ctx.world_size  # torchrun's WORLD_SIZE; `device` is rank 0's
        return record

    def _seconds(self) -> float:
        return self.state.seconds + time.perf_counter() - self.started

    def _save_checkpoint(self, complete: bool = False) -> None:
        if self.ctx.is_main:
            state = checkpoint_state(
                self.config, self.trainers, self.state, self.fingerprint, self._seconds(), complete
            )
            self.folder.write_torch(CHECKPOINT, state)
        self.saved_done = dict(self.state.done)

    def _kept(self) -> str:
        if not any(self.saved_done.values()):
            return "No epoch had finished, so no checkpoint was written."
        progress = describe_progress(self.saved_done, self._epochs())
        return f"{self.run_dir / CHECKPOINT} keeps the last good state: {progress}."

    def _epochs(self) -> dict[str, int]:
        return {name: trainer.draw.epochs for name, trainer in self.trainers.items()}

    def _interrupted_message(self) -> str:
        if not self.resumable:
            return "Training had not started, so nothing was saved; start the fit again."
        epochs, saved = self._epochs(), self.saved_done
        if saved and all(done >= epochs.get(name, 0) for name, done in saved.items()) and saved.keys() >= epochs.keys():
            kept = f"Every epoch is in {self.run_dir / CHECKPOINT}; resuming only writes the remaining files."
        elif any(saved.values()):
            kept = f"{self.run_dir / CHECKPOINT} keeps {describe_progress(saved, epochs)}."
        else:
            kept = "No epoch had finished yet, so resuming starts the training again with the same settings."
        return f"{kept} Continue with: debias fit --resume {self.run_dir}"


def run_fit(
    config: FitConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    dataset: Dataset | None = None,
) -> dict:
    """Train the uniform baseline, the DB-VAE and the other models; write the run directory; return the results.

        result = run_fit(FitConfig(epochs=2), out="runs/x")
        result["results"]["test"]["dbvae"]["worst_group_accuracy"]

    `dataset`: the data already loaded (debias.data.load_dataset), instead of loading config.data;
    config.json still records config.data and config.data_options, so describe it there.
    Raises UserError for bad settings or data, FitInterrupted (a KeyboardInterrupt) on Ctrl-C; after
    either, the run folder keeps the checkpoint of the last finished epoch for `resume_fit`.

    Under torchrun every process calls it with the same arguments and trains with DDP
    (debias.distributed.session); rank 0 creates and writes the run folder, and every rank returns
    the same results.
    """
    with session() as ctx:

        def checked_device() -> torch.device:
            validate(config, ctx.world_size)
            return resolve_device(config.device, ctx)

        device = ctx.check(checked_device)
        existed = out is not None and Path(out).exists()
        # Rank 0 holds the run folder's lock for the whole fit; the other ranks only need its path.
        claimed = ctx.check(lambda: prepare_run_dir(out, config.data, overwrite), run=ctx.is_main)
        run_dir = Path(ctx.broadcast_object(str(claimed[0]) if ctx.is_main else None))
        lock = claimed[1] if ctx.is_main else None
        try:
            return Fit(run_dir, config, device, progress, ctx=ctx).run(dataset)
        except BaseException:
            if lock is not None:
                lock.release()
            # A fit that failed before writing anything leaves no empty run folder behind.
            if ctx.is_main and not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            raise
        finally:
            if lock is not None:
                lock.release()
