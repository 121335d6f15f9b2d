"""What a run's numbers must be read with: the warnings `debias fit` prints and the report shows first.

Pure functions of a run's config.json (its summary dict), the models' selection rates and the
training weights per --groups cell; the fit's summary (debias.summary) and the report
(debias.report) both call `run_warnings`, so they warn alike. Older runs lack some keys
(latent_health, group_weights, selection_rate); what is absent is not warned about.
"""

from __future__ import annotations

from collections.abc import Callable

from debias.paired import format_p
from debias.weights_check import FIGURE_NAMES

# Below a tenth of N a few images carry most of the draws (BENCHMARKS-history.md: the raw product's
# ESS ~0 collapsed the classifier to one class).
ESS_FLOOR = 0.1
# A mean weight this close to 1 is uniform sampling up to rounding, not a cell drawn less often.
WEIGHT_TOLERANCE = 1e-6


def constant_predictors(selection_rates: dict[str, float]) -> dict[str, int]:
    """Model -> the one class it predicts for every test image, for the models that do."""
    return {name: int(rate) for name, rate in selection_rates.items() if rate is not None and rate in (0.0, 1.0)}


def underweighted_cells(cells: dict[str, dict]) -> list[tuple[str, float, float]]:
    """(cell, share of training rows, mean weight) of the rare cells drawn less often than uniform sampling would.

    `cells`: {cell: {"rows": n, "mean_weight": w}} (debias.groups.cell_weights). A cell is rare
    when it holds less than an equal share of the rows (1 / number of cells); the common cells'
    weights are under 1x whenever the rare ones' are over it, so those are not warned about.
    """
    known = {name: c for name, c in cells.items() if isinstance(c, dict) and "rows" in c and "mean_weight" in c}
    total = sum(c["rows"] for c in known.values())
    if not known or total == 0:
        return []
    found = []
    for name, c in sorted(known.items()):
        share = c["rows"] / total
        if share < 1 / len(known) and c["mean_weight"] is not None and c["mean_weight"] < 1 - WEIGHT_TOLERANCE:
            found.append((name, share, float(c["mean_weight"])))
    return found


def latent_health_lines(health: dict | None) -> list[str]:
    """Plain-text lines on the DB-VAE's latent space (config.json 'latent_health'), [] when absent."""
    if not health:
        return []
    lines = [
        f"latent health: KL {health['kl_nats']:.1f} nats per image, {health['active_dims']} of "
        f"{health['latent_dim']} dimensions active, reconstruction error {health['reconstruction_ratio']:.2f}x "
        "the mean image's" + (" (collapsed)" if health.get("collapsed") else "")
    ]
    probe = health.get("probe") or {}
    if probe:
        lines.append(
            "linear probe of the latent means (balanced accuracy): "
            + ", ".join(f"{attribute} {value:.2f}" for attribute, value in probe.items())
        )
    return lines


def _figure(name: str, test: dict) -> str:
    return f"{FIGURE_NAMES[name]} {test['weighted']:.1%} against {test['uniform']:.1%} ({format_p(test['p_value'])})"


def weights_check_warnings(config: dict, label: Callable[[str], str] = str) -> list[str]:
    """The warning, first of all, when a model trained by the weights loses to uniform sampling on validation
    beyond noise (config.json 'weights_check', debias.weights_check); [] otherwise."""
    losing = {name: check for name, check in (config.get("weights_check") or {}).items() if check.get("loses")}
    if not losing:
        return []
    parts = [
        f"{label(name)}: " + ", ".join(_figure(figure, check[figure]) for figure in check["loses"])
        for name, check in losing.items()
    ]
    chosen = config.get("weighting_strategy") or "these weights"
    if (config.get("settings") or {}).get("weighting", {}).get("strategy") == "auto":
        advice = (
            f"--weighting auto chose {chosen} on its short runs; train it again with a longer --auto-epochs, or "
            "use uniform sampling (--weighting uniform)"
        )
    else:
        advice = (
            "try --weighting auto, which keeps uniform sampling unless a strategy beats it on validation, or a "
            "gentler setting of this strategy (a smaller --errors-upweight, a larger --alpha)"
        )
    return [
        f"The weights ({chosen}) lose to uniform sampling on the validation split, beyond noise: "
        + "; ".join(parts)
        + f". Do not train with weights.csv as it is: {advice}."
    ]


def _names(models: list[str], label: Callable[[str], str]) -> str:
    shown = [label(m) for m in models]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def run_warnings(
    config: dict,
    selection_rates: dict[str, float] | None = None,
    cells: dict[str, dict] | None = None,
    label: Callable[[str], str] = str,
) -> list[str]:
    """The warnings for a run, most serious first, as sentences; [] when there is nothing to warn about.

    `config`: config.json (or the fit's summary dict); `selection_rates`: model -> share of test
    images predicted 1; `cells`: training weights per --groups cell (default: config's
    'group_weights'); `label`: a model's display name.
    """
    warnings = weights_check_warnings(config, label)
    constant = constant_predictors(selection_rates or {})
    for cls in sorted(set(constant.values())):
        models = [m for m, c in constant.items() if c == cls]
        one = len(models) == 1
        warnings.append(
            f"{_names(models, label)} {'predicts' if one else 'predict'} class {cls} for every test image: "
            f"{'a constant predictor, whose accuracy counts' if one else 'constant predictors, whose accuracies count'} "
            "the test images of that class and whose group comparisons mean nothing. Train longer (--epochs) or "
            "check the learning rate (--lr)."
        )
    health = config.get("latent_health")
    if health and health.get("collapsed"):
        warnings.append(
            f"The DB-VAE's latent space collapsed ({health['kl_nats']:.1f} nats per image, {health['active_dims']} of "
            f"{health['latent_dim']} dimensions active, reconstructions at {health['reconstruction_ratio']:.2f}x the "
            "mean image's error): nothing built on its latents can tell the images apart."
            + (f" {health['advice']}" if health.get("advice") else "")
        )
    ess = (config.get("final_weights") or {}).get("ess")
    if ess is not None and ess < ESS_FLOOR:
        warnings.append(
            f"weights.csv's effective sample size is {ess:.1%} of the training rows (under {ESS_FLOOR:.0%}): a few "
            "images carry most of the draws, so training by these weights sees little of the data. Cap the weights "
            "(--cap) or recompute them with `debias weights RUN`."
        )
    for cell, share, mean in underweighted_cells(cells if cells is not None else config.get("group_weights") or {}):
        warnings.append(
            f"The group cell {cell} is {share:.1%} of the training rows but gets {mean:.2f}x the mean weight: "
            "weights.csv draws it less often than uniform sampling would, though a rare cell is the one that "
            "needs the weights."
        )
    return warnings
