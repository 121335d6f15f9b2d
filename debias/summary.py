"""What the commands print when they finish: the fit's closing table, and `debias weights`' comparison."""

from __future__ import annotations

from debias.run_warnings import latent_health_lines, run_warnings
from debias.weighting import STRATEGIES
from debias.weights_check import auto_choice_sentence


def format_summary(result: dict) -> str:
    """The closing table of `debias fit`: accuracy and worst-group accuracy per model on the test split.

    `result` is the fit's config.json summary plus `run_dir`. Below the table: the weighting, the
    weights' ESS, the DB-VAE's latent health and the warnings (debias.run_warnings) -- constant
    predictors, a collapsed VAE, an ESS under 0.1, a rare group cell drawn less than uniformly
    (from `group_weights`) -- each on a line of its own starting with WARNING.
    """
    test = result["results"]["test"]
    lines = [
        f"Run folder: {result['run_dir']}",
        *data_notes(result.get("dataset", {}).get("info", {})),
        "",
        f"{'test split':<12}{'accuracy':>10}{'worst group':>13}  worst group is",
    ]
    for name, m in test.items():
        lines.append(f"{name:<12}{m['accuracy']:>10.3f}{m['worst_group_accuracy']:>13.3f}  {m['worst_group']}")
    w = result["final_weights"]
    selection = result.get("weighting_selection")
    if selection:
        criterion = selection["criterion"]
        lines += ["", auto_choice_sentence(selection)]
        for name, figures in selection["candidates"].items():
            mark = "*" if name == selection["chosen"] else " "
            lines.append(
                f" {mark} {name:<14}{criterion.replace('_', ' ')} {figures[criterion]:.3f}   accuracy "
                f"{figures['accuracy']:.3f}   ESS {figures['ess']:.2f}"
            )
    elif result.get("weighting_strategy"):
        lines += ["", f"weighting: {result['weighting_strategy']}"]
    if result.get("uses_group_labels"):
        who = "a strategy --weighting auto tried" if selection else "this weighting"
        lines.append(
            f"uses group labels: {who} read the true groups of the training images, so it is a "
            "label-based baseline, not a label-free estimate"
        )
    early = result.get("early_errors")
    if early:
        lines.append(
            f"early errors: the uniform baseline after epoch {early['epoch']}, {early['error_rate']:.1%} of the training "
            f"split (always predicting the majority class: {early['majority_error_rate']:.1%})"
            + (
                ""
                if early["informative"]
                else "; no epoch beat that, so the errors mark a whole class, not rare people"
            )
        )
    lines.append("")
    lines.append(
        f"weights.csv: ESS {w['ess']:.2f} of N, max/min weight ratio {w['max_min_ratio']:.1f}, {result['seconds']:.0f} s in all"
    )
    cells = {c: v for c, v in (result.get("group_weights") or {}).items() if isinstance(v, dict) and "mean_weight" in v}
    if cells:
        lines.append(
            "mean weight per group cell: " + ", ".join(f"{c} {v['mean_weight']:.2f}x" for c, v in sorted(cells.items()))
        )
    lines += latent_health_lines(result.get("latent_health"))
    selection_rates = {name: m.get("selection_rate") for name, m in test.items()}
    warnings = run_warnings(result, selection_rates)
    if warnings:
        lines += ["", *(f"WARNING: {warning}" for warning in warnings)]
    return "\n".join(lines)


def data_notes(info: dict) -> list[str]:
    """Lines about how the data were read that a user must not miss: the label mapping when the
    labels were names rather than 0/1, and the stray files a class folder held."""
    lines = []
    mapping = info.get("label_mapping") or {}
    if mapping:
        pairs = ", ".join(f"{name!r} -> {index}" for name, index in sorted(mapping.items(), key=lambda kv: kv[1]))
        how = (
            "sorted folder names" if "folder" in info else "the two `label` values in sorted order; write 0/1 to choose"
        )
        lines.append(f"labels: {pairs} ({how})")
    skipped = info.get("skipped_files") or {}
    if skipped.get("count"):
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped["by_reason"].items()))
        lines.append(f"skipped {skipped['count']} entries that are not images: {reasons}")
    return lines


def format_recompute(result: dict) -> str:
    """What `debias weights` prints: the new file, its strategy and the settings it reads, ESS and max/min ratio beside the fit's."""
    s, new, old = result["settings"], result["stats"], result["fit_stats"]
    cap = "none" if s["cap"] is None else f"{s['cap']:g}"
    strategy = STRATEGIES.get(s["strategy"])
    shown = {name: f"{s[name]:g}" if isinstance(s[name], float) else s[name] for name in s}
    read = strategy.reads if strategy else ()
    how = s["strategy"] + "".join(f", {name.replace('_', ' ')} {shown[name]}" for name in read)
    return "\n".join(
        [
            f"Wrote {result['path']} ({result['rows']} rows): {how}, cap {cap}",
            f"{'':<12}{'ESS of N':>10}{'max/min':>10}",
            f"{'new':<12}{new['ess']:>10.3f}{new['max_min_ratio']:>10.1f}",
            f"{'fit':<12}{old['ess']:>10.3f}{old['max_min_ratio']:>10.1f}",
        ]
    )
