"""`WeightingSettings`: how weights are computed, each field declared once with its flag and range."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from debias.settings import problems, setting

# `--weighting auto` is resolved by `debias fit` (debias.fit.auto), never by a strategy.
AUTO = "auto"
# How the histogram strategy combines its per-dimension densities (debias.weighting.histogram).
COMBINATIONS = ("product", "geometric", "max")
# The two density estimates of the joint strategies (debias.weighting.joint, step 2).
JOINT_METHODS = ("gmm", "knn")

# Upper bounds, checked before anything is allocated. A histogram's tables are latent dims x bins
# float64 values (10,000 bins at 100 dims: 8 MB each); beyond one bin per ~16 training images the
# bins count single samples, i.e. noise. (2,000,000,000 bins asked for 128 GB.)
MAX_BINS = 10_000
# Smoothed bin masses are (q + alpha) / (1 + bins * alpha) with q <= 1, so a weight's ratio to
# any other is at most ((1 + alpha) / alpha) ** dims: about 1 + 1e-4 at alpha 1e6 and 100 dims,
# i.e. no debiasing, which larger values cannot change. Far above (bins * alpha beyond float64's
# 1.8e308, e.g. 1e308) the sum overflows and every weight becomes NaN.
MAX_ALPHA = 1e6


def strategy_names() -> tuple[str, ...]:
    """Every registered strategy, then auto (looked up when asked, so a strategy registered later is listed)."""
    from debias.weighting.registry import STRATEGIES

    return (*STRATEGIES, AUTO)


@dataclass(frozen=True)
class WeightingSettings:
    """How weights are computed; each strategy reads the fields it needs.

    strategy         auto, over uniform sampling and Just Train Twice (`errors`), chosen by measurement
                     on nine testbeds x 3 seeds (BENCHMARKS.md, "Do the weights help?"; docs/method.md,
                     "Do no harm"): JTT recovered 0.62-0.89 of the group-balanced oracle's worst-group
                     gain where the early classifier's errors are the rare groups, but cost 5-37 points
                     of accuracy where they are hard or mislabelled images spread over everyone (CelebA
                     Smiling, 10% flipped labels), and nothing tells the two apart before training. The
                     short runs of auto do: it keeps JTT only when its validation worst-class accuracy
                     beats uniform's beyond noise and it loses on nothing, else every weight is 1. It
                     needs no group labels.

    Histogram defaults were chosen by measurement on synthfaces (BENCHMARKS-history.md, "Choosing the
    default combination"): at 100 latent dimensions the product puts all the weight on a few
    samples of one subgroup (ESS ~0), the geometric mean barely moves the weights (rare subgroups
    at 1.05-1.2x), and the max gives each of the three rare subgroups about 2x at an ESS near 0.3.

    errors_upweight  20 sits in the middle of the values JTT tuned over ({5, 20, 50, 100}); with
                     5% errors it gives the errors half the sampling mass, what balancing a 5%
                     group against the rest would. Measured with kept class shares (BENCHMARKS.md,
                     "Keeping each class's share"): 5 costs the CelebA sample at most 1 point of
                     accuracy but recovers 0.34 / 0.48 of the oracle's lift on the spurious testbed
                     (20: 0.68 / 0.69) and gives hat faces 3.3x (20: 8.4x).
    errors_epoch     1: JTT's early stopping keeps the errors of the shortcut, before the network
                     memorizes the rare samples (after which it gets them all right). A fit takes
                     the first epoch from this one on whose classifier errs less than always
                     predicting the majority class (debias.weighting.errors.early_error_rates).
    keep_class_shares  on: JTT's errors on the CelebA sample are half of the blond images and 2% of
                     the others, so free weights shifted the draws toward blond and cost 6.4 points
                     of accuracy in the DB-VAE (3.5 in the sampler); normalized within each class
                     they cost 1.6 (2.4), with the same gains on the spurious testbed (BENCHMARKS.md,
                     "Keeping each class's share"). Face detection scores only faces, so it changes
                     nothing there.
    joint_alpha      relative to the class's median density (debias.weighting.joint): bounds a
                     weight near 1/joint_alpha times a typical one.
    """

    strategy: str = setting(
        "auto",
        "--weighting",
        "Weighting strategy; auto (the default) trains a short run of uniform sampling and of each candidate "
        "(--auto-strategies) and keeps a candidate only where validation shows it helps.",
        choices=strategy_names,
    )
    bins: int = setting(
        10,
        "--bins",
        "histogram: bins per latent dimension.",
        low=2,
        high=MAX_BINS,
        why=f"one bin cannot tell rare from common; {MAX_BINS:,} leave even CelebA's 162,770 training images "
        "16 per bin",
    )
    alpha: float = setting(
        0.001,
        "--alpha",
        "histogram: smoothing; 0 = uniform over latent space, large = no debiasing.",
        low=0,
        high=MAX_ALPHA,
        why=f"0 is the paper's uniform-over-latent-space limit; from {MAX_ALPHA:g} on the weights are uniform "
        "to 1 part in 10,000",
    )
    combine: str = setting("max", "--combine", "histogram: how per-dimension densities combine.", choices=COMBINATIONS)
    cap: float | None = setting(
        None, "--cap", "Largest weight, as a multiple of the mean weight.", low=1, why="a multiple of the mean weight"
    )
    errors_upweight: float = setting(
        20.0,
        "--errors-upweight",
        "errors strategies: weight of an early classifier's "
        "training error relative to a correct sample (JTT's lambda).",
        low=1,
        why="1 = no upweighting",
    )
    errors_epoch: int = setting(
        1,
        "--errors-epoch",
        "errors strategies: the uniform baseline's epoch whose training "
        "errors are upweighted (a later one if its classifier errs more than always predicting "
        "the majority class).",
        low=1,
    )
    keep_class_shares: bool = setting(
        True,
        "--keep-class-shares/--free-class-shares",
        "label-free strategies: normalize the weights within each class, so that the weights move "
        "draws between the images of a class but every class keeps its share of the training data.",
    )
    joint_method: str = setting(
        "gmm",
        "--joint-method",
        "joint strategies: Gaussian mixture or k-nearest-neighbour density.",
        choices=JOINT_METHODS,
    )
    joint_dims: int = setting(4, "--joint-dims", "joint strategies: principal directions of the latent means.", low=1)
    joint_components: int = setting(8, "--joint-components", "joint strategies: mixture components per class.", low=1)
    knn_k: int = setting(20, "--knn-k", "joint strategies: neighbours of the k-NN density.", low=1)
    joint_alpha: float = setting(
        0.1,
        "--joint-alpha",
        "joint strategies: smoothing, relative to the median density "
        "(bounds a weight near 1/alpha times a typical one).",
        low=0,
    )

    def to_dict(self) -> dict:
        """Plain dict for config.json."""
        return asdict(self)

    @classmethod
    def from_record(cls, recorded: dict) -> WeightingSettings:
        """The settings a run recorded (config.json's settings.weighting), as that run computed its weights.

        Runs recorded before keep_class_shares existed normalized over all scored rows; only
        `joint` kept each class's share then, inside its own code. TypeError for a key that is no
        field.
        """
        kept_then = recorded.get("strategy") == "joint"
        return cls(**{"keep_class_shares": kept_then, **recorded})


def validate(settings: WeightingSettings, allow_auto: bool = False) -> None:
    """Raise ValueError naming every setting that is out of range (one message).

    `allow_auto`: accept strategy "auto" (a fit's settings, resolved by measurement before use).
    """
    found = problems(settings)
    if settings.strategy == AUTO and not allow_auto:
        names = ", ".join(strategy_names()[:-1])
        found.append("--weighting auto is chosen by `debias fit`; pass a strategy: " + names)
    if found:
        raise ValueError("; ".join(found))
