"""The report's one-sentence answer: what the DB-VAE (or the weights) did to the worst-off group."""

from __future__ import annotations

from markupsafe import Markup


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def headline(models: dict) -> tuple[str, Markup]:
    """The one-sentence answer, as plain text (report.json) and as HTML with the numbers in bold."""
    if not models:
        return "No model predictions found.", Markup("No model predictions found.")
    if "uniform" in models and "dbvae" in models:
        base, new = models["uniform"], models["dbvae"]
        x, y = base["worst_group_accuracy"], new["worst_group_accuracy"]
        a, b = base["accuracy"], new["accuracy"]
        dw, da = round(100 * (y - x), 1), round(100 * (b - a), 1)
        verb = "raised" if dw > 0 else "lowered" if dw < 0 else "left"
        if base["worst_group"] == new["worst_group"]:
            groups_t, groups_h = "", Markup("")
            tail_t, tail_h = f" (group {new['worst_group']})", Markup(" (group <em>{}</em>)").format(new["worst_group"])
        else:
            groups_t = f" (group {base['worst_group']})"
            groups_h = Markup(" (group <em>{}</em>)").format(base["worst_group"])
            tail_t, tail_h = f" (group {new['worst_group']})", Markup(" (group <em>{}</em>)").format(new["worst_group"])
        if dw == 0:
            worst_t = f"DB-VAE left worst-group accuracy unchanged at {_pct(y)}{tail_t}"
            worst_h = (
                Markup("DB-VAE left worst-group accuracy unchanged at <strong>{}</strong>").format(_pct(y)) + tail_h
            )
        else:
            worst_t = f"DB-VAE {verb} worst-group accuracy from {_pct(x)}{groups_t} to {_pct(y)}{tail_t}"
            worst_h = (
                Markup("DB-VAE {} worst-group accuracy from <strong>{}</strong>").format(verb, _pct(x))
                + groups_h
                + Markup(" to <strong>{}</strong>").format(_pct(y))
                + tail_h
            )
        if da < 0:
            cost = ("at a cost of {} points of overall accuracy", f"{abs(da):.1f}")
        elif da > 0:
            cost = ("while raising overall accuracy by {} points", f"{da:.1f}")
        else:
            cost = ("with overall accuracy unchanged", None)
        change = f" ({_pct(a)} → {_pct(b)})" if cost[1] else f" at {_pct(a)}"
        text = f"{worst_t} {cost[0].format(cost[1])}{change}."
        html = (
            worst_h
            + Markup(" ")
            + Markup(cost[0].replace("{}", "<strong>{}</strong>")).format(cost[1])
            + Markup("{}.").format(change)
        )
        return text, html
    name = "dbvae" if "dbvae" in models else next(iter(models))
    m = models[name]
    text = (
        f"{m['label']}: overall accuracy {_pct(m['accuracy'])}, worst-group accuracy {_pct(m['worst_group_accuracy'])} "
        f"(group {m['worst_group']}); the run has no uniform baseline to compare with."
    )
    html = Markup(
        "{}: overall accuracy <strong>{}</strong>, worst-group accuracy <strong>{}</strong> (group <em>{}</em>); "
        "the run has no uniform baseline to compare with."
    ).format(m["label"], _pct(m["accuracy"]), _pct(m["worst_group_accuracy"]), m["worst_group"])
    return text, html


def others_sentence(models: dict) -> str | None:
    """A sentence on the other models (sampler, oracle) beside the headline, or None when there are none."""
    others = [m for name, m in models.items() if name not in ("uniform", "dbvae")]
    if not others or not {"uniform", "dbvae"} <= set(models):
        return None
    parts = [f"{m['label']} {_pct(m['worst_group_accuracy'])}" for m in others]
    return "For comparison, worst-group accuracy of " + "; ".join(parts) + "."
