"""Figures for the report (seaborn on matplotlib's Agg backend), returned as PNG bytes.

The figures only render numbers computed elsewhere (debias.report.metrics); none is computed here.
"""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

# 150 dpi: sharp on a laptop screen at the figure widths below, and fine in print.
DPI = 150
WIDTH_IN = 9.0


def model_palette(models: list[str]) -> dict[str, tuple]:
    """One colour per model name, the same in every figure (colour-blind-safe palette)."""
    colors = sns.color_palette("colorblind", 10)
    fixed = {"uniform": colors[7], "dbvae": colors[0], "sampler": colors[1], "oracle": colors[2]}
    spare = [c for i, c in enumerate(colors) if i not in (0, 1, 2, 7)]
    palette = {}
    for name in models:
        palette[name] = fixed.get(name) or spare[len([m for m in palette if m not in fixed]) % len(spare)]
    return palette


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    # metadata Software=None: matplotlib would otherwise write its URL into the PNG.
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _theme() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)


def group_accuracy(table: pd.DataFrame, labels: dict[str, str], palette: dict[str, tuple]) -> bytes:
    """Horizontal bars of accuracy per group and model with their exact (Clopper-Pearson) intervals.

    `table`: one row per (model, group) with columns model, group, accuracy, ci_low, ci_high.
    """
    _theme()
    models = list(dict.fromkeys(table["model"]))
    groups = list(dict.fromkeys(table["group"]))
    data = table.assign(label=table["model"].map(labels))
    height = max(2.5, 0.28 * len(groups) * len(models) + 1.2)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    sns.barplot(
        data=data,
        x="accuracy",
        y="group",
        hue="label",
        order=groups,
        hue_order=[labels[m] for m in models],
        palette={labels[m]: palette[m] for m in models},
        errorbar=None,
        ax=ax,
        orient="h",
        saturation=0.9,
    )
    # seaborn draws one container of bars per hue level, bars in `order`; the intervals go on
    # the bars' centres (seaborn cannot take precomputed intervals).
    for model, container in zip(models, ax.containers):
        rows = data[data["model"] == model].set_index("group")
        for group, bar in zip(groups, container):
            if group not in rows.index:
                continue
            row = rows.loc[group]
            y = bar.get_y() + bar.get_height() / 2
            ax.errorbar(
                row["accuracy"],
                y,
                xerr=[[row["accuracy"] - row["ci_low"]], [row["ci_high"] - row["accuracy"]]],
                fmt="none",
                ecolor="#222222",
                elinewidth=1.2,
                capsize=3,
            )
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("test accuracy (whiskers: 95% Clopper-Pearson interval)")
    ax.set_ylabel("")
    ax.legend(title=None, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(models), 4), frameon=False)
    return _png(fig)


def weight_distribution(frame: pd.DataFrame, order: list[str], strategy: str) -> bytes:
    """Box plots of the training weights per group on a log axis, with the mean weight 1 marked.

    `strategy` names the weighting the weights came from, on the axis label.

    `frame`: one row per training sample with columns group and weight.
    """
    _theme()
    height = max(2.2, 0.42 * len(order) + 1.0)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(
            data=frame,
            x="weight",
            y="group",
            order=order,
            ax=ax,
            color=sns.color_palette("colorblind")[0],
            fliersize=1.5,
            linewidth=0.9,
            log_scale=True,
        )
    means = frame.groupby("group")["weight"].mean()
    ax.scatter(
        [means.get(g, np.nan) for g in order],
        range(len(order)),
        marker="D",
        s=22,
        color="#d55e00",
        zorder=5,
        label="mean weight",
    )
    ax.axvline(1.0, color="#444444", linestyle="--", linewidth=0.9, label="weight 1 (uniform)")
    # Plain numbers at powers of two read better than 10^0-style labels on a log axis; the
    # in-between 1.5x ticks only where the weights span a few powers of two (else they collide).
    span = float(frame["weight"].max() / max(frame["weight"].min(), 1e-300))
    subs = (1.0, 1.5) if span < 16 else (1.0,)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=2, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"weight of each training image in weights.csv ({strategy} strategy; log scale)")
    ax.set_ylabel("")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _png(fig)


# (history column, panel title, y axis as a percentage?)
CURVES = [
    ("train_classification", "classification loss (training)", False),
    ("valid_accuracy", "accuracy (validation)", True),
    ("valid_worst_group_accuracy", "worst-group accuracy (validation)", True),
    ("ess", "effective sample size of the weights (fraction of N)", False),
    # Latent health of the DB-VAE, on its rows only (debias.fit measures it every epoch).
    ("kl_nats", "KL per image (nats): what the latent code stores", False),
    ("active_dims", "active latent dimensions", False),
    ("reconstruction_ratio", "reconstruction error / mean image's", False),
]


def training_curves(history: pd.DataFrame, labels: dict[str, str], palette: dict[str, tuple]) -> bytes | None:
    """One panel per history column present (losses, accuracies, ESS) against epoch, a line per model."""
    panels = [c for c in CURVES if c[0] in history.columns and history[c[0]].notna().any()]
    if not panels or "epoch" not in history.columns:
        return None
    _theme()
    models = list(dict.fromkeys(history["model"]))
    data = history.assign(label=history["model"].map(lambda m: labels.get(m, m)))
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH_IN, 2.7 * rows), squeeze=False)
    for ax, (column, title, percent) in zip(axes.flat, panels):
        sns.lineplot(
            data=data.dropna(subset=[column]),
            x="epoch",
            y=column,
            hue="label",
            marker="o",
            ax=ax,
            hue_order=[labels.get(m, m) for m in models if data.loc[data["model"] == m, column].notna().any()],
            palette={labels.get(m, m): palette[m] for m in models},
            legend=False,
        )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if percent:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles = [matplotlib.lines.Line2D([], [], color=palette[m], marker="o", label=labels.get(m, m)) for m in models]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(models), 4), frameon=False, bbox_to_anchor=(0.5, -0.02)
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)
