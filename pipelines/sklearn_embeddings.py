"""scikit-learn on precomputed embeddings, with `sample_weight` from a debias weights.csv.

    # any embeddings: rows of X.npy are the rows of table.csv (sample_id, label[, group columns])
    python pipelines/sklearn_embeddings.py --embeddings X.npy --table table.csv --weights runs/x/weights.csv --group Male
    # a run folder's own latents (latents.npy rows = weights.csv rows), per group of the run (group_Male)
    python pipelines/sklearn_embeddings.py --run runs/x --group Male

Holds out a stratified --test-size of the rows, fits LogisticRegression with and without the
weights, and prints accuracy overall and per (label, group) cell for both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from debias.errors import UserError
from debias.weight_files import GROUP_PREFIX, SampleWeights


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, pd.DataFrame, str]:
    """(embeddings [N, D], table with sample_id and label per row, weights path) from the arguments."""
    if args.run:
        run = Path(args.run)
        embeddings_path, table_path = run / "latents.npy", run / "weights.csv"
        weights_path = args.weights or str(run / "weights.csv")
    else:
        if not (args.embeddings and args.table and args.weights):
            raise UserError("pass --run RUN, or all of --embeddings X.npy, --table T.csv and --weights W.csv")
        embeddings_path, table_path, weights_path = Path(args.embeddings), Path(args.table), args.weights
    for path in (embeddings_path, table_path):
        if not path.is_file():
            raise UserError(f"{path} does not exist")
    embeddings = np.load(embeddings_path, allow_pickle=False)
    table = pd.read_csv(table_path, dtype={"sample_id": str}, keep_default_na=False)
    missing = {"sample_id", "label"} - set(table.columns)
    if missing:
        raise UserError(f"{table_path} needs columns sample_id and label; missing {', '.join(sorted(missing))}")
    if embeddings.ndim != 2 or len(embeddings) != len(table):
        raise UserError(f"{embeddings_path} has shape {embeddings.shape} but {table_path} has {len(table)} rows")
    if args.group:
        group_column(table, args.group, table_path)
    return embeddings, table, weights_path


def group_column(table: pd.DataFrame, group: str, source) -> str:
    """The column of `table` holding attribute `group`: its own name, or group_<name> (a run's weights.csv)."""
    for column in (group, f"{GROUP_PREFIX}{group}"):
        if column in table.columns:
            return column
    known = [c for c in table.columns if c not in ("sample_id", "weight", "log_density", "label")]
    known = [c[len(GROUP_PREFIX) :] if c.startswith(GROUP_PREFIX) else c for c in known]
    raise UserError(
        f"--group {group!r} is not a column of {source}; its group columns are: {', '.join(known) or 'none'}"
        + (
            ""
            if known
            else " (a run has group_<attr> columns when its data has group columns: debias fit --groups ATTR)"
        )
    )


def accuracy_by_cell(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[tuple, float]:
    """(label, group) -> accuracy."""
    frame = pd.DataFrame({"label": y, "group": groups, "correct": y == pred})
    return frame.groupby(["label", "group"])["correct"].mean().to_dict()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, fit both models, print the comparison; a UserError is one message and exit code 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a debias run folder: latents.npy + weights.csv")
    parser.add_argument("--embeddings", help=".npy [N, D], rows as in --table")
    parser.add_argument(
        "--table", help="CSV with sample_id, label (0/1) and optional group columns, one row per embedding"
    )
    parser.add_argument("--weights", help="weights.csv (default with --run: RUN/weights.csv)")
    parser.add_argument(
        "--group",
        default=None,
        help="column of --table to report accuracy by (with --run: a group attribute of the run)",
    )
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """The comparison described by the parsed `args`."""
    X, table, weights_path = load_inputs(args)
    y = table["label"].to_numpy(dtype=np.int64)
    groups = (
        table[group_column(table, args.group, "the table")].astype(str).to_numpy()
        if args.group
        else np.full(len(y), "all")
    )
    # Align once over every row, then index: the weights follow the rows into any split.
    sample_weight = SampleWeights.load(weights_path).to_sample_weight(table["sample_id"])
    train, test = train_test_split(np.arange(len(y)), test_size=args.test_size, random_state=args.seed, stratify=y)

    print(f"{len(train)} training rows, {len(test)} test rows, {X.shape[1]} dimensions; weights from {weights_path}")
    for name, weight in (("unweighted", None), ("weighted", sample_weight[train])):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(X[train], y[train], logisticregression__sample_weight=weight)
        pred = model.predict(X[test])
        cells = accuracy_by_cell(y[test], pred, groups[test])
        print(f"{name:<11} test accuracy {np.mean(pred == y[test]):.4f}, worst cell {min(cells.values()):.4f}")
        for (label, group), acc in cells.items():
            print(f"    label={label} {args.group or 'group'}={group}: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
