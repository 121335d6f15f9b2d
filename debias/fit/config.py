"""FitConfig, every setting of a fit declared once, and `validate`, the one check of them all."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field, fields

from debias.data.options import RUNTIME_OPTIONS, DataFlags
from debias.errors import UserError
from debias.fit.tensorboard import INSTALL_HINT
from debias.settings import declared, problems, setting, value_at, value_problems
from debias.weighting import (
    AUTO,
    LEGACY_STRATEGY,
    STRATEGIES,
    WeightingSettings,
    auto_candidates,
    needs_errors,
    needs_groups,
    unread_settings_problem,
)

# The models a fit trains, in the order they train; the order also fixes each one's random
# streams. debias.fit.draws.DRAWS says how each one draws its rows.
MODELS = ("uniform", "dbvae", "sampler", "oracle")


def _strategies() -> tuple[str, ...]:
    return tuple(STRATEGIES)


@dataclass(frozen=True)
class FitConfig:
    """Every setting of a fit; written to config.json as resolved.

    Each field is declared with its command-line flag, help text and range (debias.settings), so
    the command line, `validate` and the checks of `debias fit --resume` all come from here.
    `data_options` holds the dataset loader's options (`--root`, `--target`, `--groups`,
    `--limit`, `--data-option KEY=VALUE`, and the runtime-only `--cache-dir`, `--workers`).

    The settings declared `runtime=True` (device, amp, eval_batch_size, compile, tensorboard, and
    the data options cache_dir, workers) change how a fit runs, never what it trains: config.json
    records them apart ("runtime", `runtime_dict`), never among the settings (`to_dict`).
    """

    data: str = setting(
        "synthfaces",
        "--data",
        "Dataset: synthfaces, celeba, a manifest .csv or a class-folder directory (see `debias datasets`).",
    )
    data_options: dict = field(default_factory=dict)
    epochs: int = setting(
        4, "--epochs", "Passes over the training split after the DB-VAE's warm-up, for every model.", low=1
    )
    batch_size: int = setting(
        128,
        "--batch-size",
        "Training images per step (all processes together under torchrun).",
        low=2,
        why="batch norm needs two samples",
    )
    learning_rate: float = setting(
        1e-3, "--lr", "Adam learning rate, annealed over the epochs by a cosine.", low=0, low_open=True
    )
    latent_dim: int = setting(100, "--latent-dim", "Dimensions of the DB-VAE's latent space.", low=1)
    # KL weight relative to the mean-absolute reconstruction error, chosen by latent health
    # (BENCHMARKS.md, "Latent health"): at 0.01 the VAE collapsed (1.4 nats per image, decoding at
    # 0.86x the mean image's error on synthfaces; 0.1 nats, 1.14x on the CelebA sample); 0.002
    # stored 5.4 nats at 0.65x, 0.001 10.5 at 0.56x, the lab code's 0.0005 17.3 at 0.48x.
    beta: float = setting(
        0.0005, "--beta", "Weight of the KL term against the mean absolute reconstruction error.", low=0
    )
    # 300 steps: the CelebA sample (25 steps per epoch) stored 8.4 nats at 0.87x without a warm-up,
    # 20.3 at 0.55x with it (600 steps: 24.0 at 0.51x); synthfaces (157 steps per epoch) warms up 2 epochs.
    vae_warmup_steps: int = setting(
        300,
        "--vae-warmup-steps",
        "DB-VAE: training steps with uniform draws before its "
        "own weights are used, rounded up to whole epochs; every model trains them on top of --epochs, so all "
        "have the same budget.",
        low=0,
    )
    image_size: int = setting(
        64,
        "--image-size",
        "Side in pixels of the square images the models see.",
        low=16,
        multiple_of=16,
        why="four stride-2 stages",
    )
    width: int = setting(
        16, "--width", "Channels of the first convolution; each of the four stages doubles them.", low=1
    )
    augment: bool = setting(
        True,
        "--augment/--no-augment",
        "Train every model on copies of its images flipped left-right at random and shifted by up to 4 "
        "pixels (resampling repeats rare images; without this the models memorise them).",
    )
    weighting: WeightingSettings = field(default_factory=WeightingSettings)
    seed: int = setting(0, "--seed", "Seed of the models' initialisation and of every epoch's draw.", low=0)
    device: str = setting(
        "auto", "--device", "auto, cpu, cuda or cuda:N (under torchrun: each process its own GPU).", runtime=True
    )
    amp: bool = setting(True, "--amp/--no-amp", "bf16 autocast on CUDA (no effect on a CPU).", runtime=True)
    # Models trained besides the DB-VAE (always trained).
    models: tuple[str, ...] = setting(
        MODELS,
        "--models",
        "Models to train (dbvae always): uniform baseline, sampler (a "
        "plain loop over weights.csv), oracle (balances the true groups).",
        choices=MODELS,
    )
    # None: the dataset's own choice.
    vae_on: str | None = setting(
        None,
        "--vae-on",
        "Train the VAE terms on every image (all are faces) or on positives "
        "only (face detection). Default: the dataset's.",
        choices=("all", "positives"),
    )
    eval_batch_size: int = setting(
        512,
        "--eval-batch-size",
        "Images per batch when encoding and predicting (a memory setting; training batches are --batch-size).",
        runtime=True,
        low=1,
    )
    # Two epochs per candidate: enough for the weights to have moved the model (the first epoch of
    # a DB-VAE draws by the weights of an untrained encoder).
    auto_strategies: tuple[str, ...] = setting(
        (),
        "--auto-strategies",
        "auto: strategies to try besides uniform sampling, which is always tried as the reference (default: "
        + ",".join(auto_candidates())
        + ").",
        choices=_strategies,
    )
    auto_epochs: int = setting(2, "--auto-epochs", "auto: epochs of each candidate's short run.", low=1)
    val_groups: tuple[str, ...] = setting(
        (),
        "--val-groups",
        "auto: choose by worst-group accuracy over these attributes of the validation split (never used for training).",
        metavar="ATTR[,ATTR]",
    )
    auto_accuracy_budget: float = setting(
        2.0,
        "--auto-accuracy-budget",
        "auto: points of validation accuracy a candidate may lose against the most accurate one and still be chosen.",
        low=0,
        high=100,
    )
    # Off by default: compiling costs about 30 s per model on a CPU, more than a small fit trains.
    compile: bool = setting(
        False,
        "--compile",
        "Train through torch.compile (needs a C++ compiler on a CPU; costs a compilation per model).",
        runtime=True,
    )
    tensorboard: str | None = setting(
        None,
        "--tensorboard",
        "Also write every epoch's history (losses, accuracies, ESS) as TensorBoard scalars into DIR "
        "(needs `pip install tensorboard`).",
        runtime=True,
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        # The DB-VAE is always trained; listing models in MODELS order makes equal sets compare equal.
        # Anything but a tuple of names is left as given, for `validate` to refuse with the others.
        if isinstance(self.models, (tuple, list)) and all(isinstance(m, str) for m in self.models):
            order = {name: i for i, name in enumerate(MODELS)}
            models = sorted(set(self.models) | {"dbvae"}, key=lambda m: (order.get(m, len(order)), m))
            object.__setattr__(self, "models", tuple(models))

    def to_dict(self) -> dict:
        """The recorded settings, a plain nested dict for config.json's "settings": what the fit trains.

        Runtime settings are left out (see `runtime_dict`), so two fits that differ only in device
        or cache folder record the same settings, and a run's config.json given back to
        `debias fit --config` never pins a device or a cache of another machine.
        """
        d = asdict(self)
        for item in declared(FitConfig):
            if item.setting.runtime:
                parent = d
                for name in item.path[:-1]:
                    parent = parent[name]
                del parent[item.path[-1]]
        d["data_options"] = {k: v for k, v in d["data_options"].items() if k not in RUNTIME_OPTIONS}
        for f in fields(self):
            if isinstance(d.get(f.name), tuple):
                d[f.name] = list(d[f.name])
        return d

    def runtime_dict(self) -> dict:
        """How the fit ran (config.json's "runtime"): the runtime settings, and the runtime data options given."""
        d = {item.name: value_at(self, item.path) for item in declared(FitConfig) if item.setting.runtime}
        options = {k: v for k, v in self.data_options.items() if k in RUNTIME_OPTIONS and v is not None}
        if options:
            d["data_options"] = options
        return d

    @classmethod
    def from_dict(cls, settings: dict) -> FitConfig:
        """The inverse of to_dict (config.json's "settings"); TypeError/ValueError on keys it does not know."""
        d = dict(settings)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        if "weighting" in d:
            # Runs recorded before there were strategies to choose from used the histograms.
            d["weighting"] = WeightingSettings.from_record({"strategy": LEGACY_STRATEGY, **d["weighting"]})
        for f in fields(cls):
            if isinstance(d.get(f.name), list):
                d[f.name] = tuple(d[f.name])
        if "data_options" in d:
            # `progress` was recorded by debias <= 0.1.0 (from --quiet); it is not a setting.
            d["data_options"] = {k: v for k, v in d["data_options"].items() if k != "progress"}
        return cls(**d)

    @property
    def candidates(self) -> tuple[str, ...]:
        """The strategies `--weighting auto` tries: uniform sampling, the reference every other must beat, then the others."""
        others = tuple(self.auto_strategies) or auto_candidates()
        return ("uniform", *(name for name in others if name != "uniform"))

    @property
    def uses_group_labels(self) -> bool:
        """Whether some strategy of this fit (the chosen one, or any auto candidate) reads the true group labels."""
        if self.weighting.strategy == AUTO:
            return any(needs_groups(name) for name in self.candidates)
        return needs_groups(self.weighting.strategy)

    @property
    def uses_errors(self) -> bool:
        """Whether some strategy of this fit (the chosen one, or any auto candidate) reads the early errors."""
        if self.weighting.strategy == AUTO:
            return any(needs_errors(name) for name in self.candidates)
        return needs_errors(self.weighting.strategy)


_DEFAULTS = FitConfig()


def validate(config: FitConfig, world_size: int = 1, whole: bool = True) -> None:
    """Raise UserError for settings that cannot work, before any data is loaded; one message lists them all.

    Ranges and choices come from each field's declaration; the checks here involve several
    settings. `world_size`: the processes of a torchrun launch, among which the batch is split.
    `whole=False` skips the checks against the strategy (a --resume command line: the strategy is
    the run's, not the default's; the resumed settings are validated whole).
    """
    found = problems(config)
    if not isinstance(config.weighting, WeightingSettings):
        raise UserError("; ".join(found))  # the checks below read the weighting settings
    if (
        world_size > 1
        and config.batch_size >= 2
        and (config.batch_size % world_size or config.batch_size // world_size < 2)
    ):
        found.append(
            f"--batch-size {config.batch_size} is the batch of all {world_size} processes together: it must be a "
            f"multiple of {world_size} with at least 2 per process (batch norm); use e.g. "
            f"--batch-size {max(2, -(-config.batch_size // world_size)) * world_size}"
        )
    if whole:
        found += _strategy_problems(config)
    if config.tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        found.append(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}")
    if not isinstance(config.data_options, dict):
        found.append(f"data_options must be a dict of the dataset's options, got {type(config.data_options).__name__}")
    else:
        for item in declared(DataFlags):
            if item.name in config.data_options:
                found += value_problems(item, config.data_options[item.name])
    if found:
        raise UserError("; ".join(found))


def _strategy_problems(config: FitConfig) -> list[str]:
    """Settings that do not fit the chosen strategy: auto's options without auto, options it does not read."""
    found = []
    if config.weighting.strategy != AUTO:
        for item in declared(FitConfig):
            if item.name.startswith("auto_") or item.name == "val_groups":
                if value_at(config, item.path) != value_at(_DEFAULTS, item.path):
                    found.append(
                        f"{item.setting.flag} only applies to --weighting auto (it chooses the strategy); "
                        "drop it or add --weighting auto"
                    )
    # A weighting setting the strategy does not read would be ignored without a word.
    strategies = config.candidates if config.weighting.strategy == AUTO else (config.weighting.strategy,)
    weighting, defaults = config.weighting, _DEFAULTS.weighting
    changed = [f.name for f in fields(WeightingSettings) if getattr(weighting, f.name) != getattr(defaults, f.name)]
    unread = unread_settings_problem(strategies, changed)
    if unread:
        found.append(unread)
    errors_epoch = weighting.errors_epoch
    if (
        config.uses_errors
        and isinstance(errors_epoch, int)
        and isinstance(config.epochs, int)
        and errors_epoch > config.epochs
    ):
        found.append(
            f"--errors-epoch {errors_epoch} is after the last epoch ({config.epochs}) of the uniform baseline whose "
            "errors it reads; lower it or raise --epochs"
        )
    return found
