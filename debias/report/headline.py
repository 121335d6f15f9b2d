"""The report's one-sentence answer: what the DB-VAE (or the weights) did to the worst-off group, and whether it is more than noise."""

from __future__ import annotations

from markupsafe import Markup, escape

from debias.paired import SIGNIFICANCE, SMALL_GROUP, format_p, significance_note


def percent(x: float) -> str:
    """0.864 -> '86.4%'."""
    return f"{100 * x:.1f}%"


class _Sentence:
    """Text built once, rendered as plain text (report.json) and as HTML with numbers in bold and groups in italics."""

    def __init__(self):
        self.parts: list[tuple[str, str | None]] = []

    def add(self, text: str, style: str | None = None) -> _Sentence:
        self.parts.append((text, style))
        return self

    def text(self) -> str:
        return "".join(text for text, _ in self.parts)

    def html(self) -> Markup:
        tags = {"b": "<strong>{}</strong>", "i": "<em>{}</em>"}
        return Markup("").join(
            Markup(tags[style]).format(text) if style else escape(text) for text, style in self.parts
        )


def _group(sentence: _Sentence, name: str, count: int | None, p: float | None = None) -> None:
    """' (group X)', ' (group X, 8 test images)' when one image matters, with '; p = 1' when given."""
    sentence.add(" (group ").add(name, "i")
    if count is not None and count < SMALL_GROUP:
        sentence.add(f", {count} test image{'s' if count != 1 else ''}")
    if p is not None:
        sentence.add("; ").add(format_p(p), "b")
    sentence.add(")")


def _verdict(sentence: _Sentence, p: float | None) -> None:
    """', significant (p = 0.003)' or ', not significant (p = 0.41)'; nothing without a test."""
    if p is None:
        return
    sentence.add(", significant (" if p < SIGNIFICANCE else ", not significant (").add(format_p(p), "b").add(")")


def _count(model: dict, group: str) -> int | None:
    return (model.get("groups") or {}).get(group, {}).get("count")


def headline(
    models: dict, tests: dict | None = None, constant: dict | None = None, weighting: str | None = None
) -> tuple[str, Markup]:
    """The one-sentence answer, as plain text (report.json) and as HTML with the numbers in bold.

    `tests`: paired tests against the uniform baseline per model (debias.report.evaluate.paired_tests);
    `constant`: model -> the one class it predicts, for constant predictors; `weighting`: the
    strategy the DB-VAE drew by, named in the sentence.
    """
    tests, constant = tests or {}, constant or {}
    if not models:
        return "No model predictions found.", Markup("No model predictions found.")
    s = _Sentence()
    if "uniform" in models and "dbvae" in models:
        base, new = models["uniform"], models["dbvae"]
        test = tests.get("dbvae") or {}
        worst_p = (test.get("worst_group_accuracy") or {}).get("p_value")
        overall_p = (test.get("accuracy") or {}).get("p_value")
        x, y = base["worst_group_accuracy"], new["worst_group_accuracy"]
        a, b = base["accuracy"], new["accuracy"]
        dw, da = round(100 * (y - x), 1), round(100 * (b - a), 1)
        s.add("DB-VAE" + (f" ({weighting} weights)" if weighting else ""))
        if dw == 0:
            s.add(" left worst-group accuracy unchanged at ").add(percent(y), "b")
            _group(s, new["worst_group"], _count(new, new["worst_group"]), worst_p)
        else:
            s.add(f" {'raised' if dw > 0 else 'lowered'} worst-group accuracy from ").add(percent(x), "b")
            if base["worst_group"] != new["worst_group"]:
                _group(s, base["worst_group"], _count(base, base["worst_group"]))
            s.add(" to ").add(percent(y), "b")
            _group(s, new["worst_group"], _count(new, new["worst_group"]))
            _verdict(s, worst_p)
        if da == 0:
            s.add("; overall accuracy unchanged at ").add(percent(a), "b")
            if overall_p is not None:
                s.add(" (").add(format_p(overall_p), "b").add(")")
        else:
            s.add(f"; overall accuracy {'rose' if da > 0 else 'fell'} by ").add(f"{abs(da):.1f}", "b")
            s.add(f" points ({percent(a)} → {percent(b)})")
            _verdict(s, overall_p)
        s.add(".")
        compared = [m for m in ("uniform", "dbvae") if m in constant]
        if compared:
            names = " and ".join(models[m]["label"] for m in compared)
            s.add(
                f" {names} {'predicts' if len(compared) == 1 else 'predict'} one class for every test image, "
                "so this compares constant predictors."
            )
        return s.text(), s.html()
    name = "dbvae" if "dbvae" in models else next(iter(models))
    m = models[name]
    s.add(f"{m['label']}: overall accuracy ").add(percent(m["accuracy"]), "b")
    s.add(", worst-group accuracy ").add(percent(m["worst_group_accuracy"]), "b")
    _group(s, m["worst_group"], _count(m, m["worst_group"]))
    s.add("; the run has no uniform baseline to compare with.")
    return s.text(), s.html()


def others_sentence(models: dict, tests: dict | None = None) -> str | None:
    """A sentence on the other models (sampler, oracle) beside the headline, each with its p against uniform, or None."""
    tests = tests or {}
    others = [name for name in models if name not in ("uniform", "dbvae")]
    if not others or not {"uniform", "dbvae"} <= set(models):
        return None
    parts = []
    for name in others:
        m = models[name]
        part = f"{m['label']} {percent(m['worst_group_accuracy'])}"
        p = ((tests.get(name) or {}).get("worst_group_accuracy") or {}).get("p_value")
        if p is not None:
            change = round(100 * (m["worst_group_accuracy"] - models["uniform"]["worst_group_accuracy"]), 1)
            where = "the same as" if change == 0 else f"{abs(change):.1f} points {'above' if change > 0 else 'below'}"
            part += f", {where} uniform, {significance_note(p)}"
        parts.append(part)
    return "For comparison, worst-group accuracy of " + "; ".join(parts) + "."
