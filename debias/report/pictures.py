"""The report's pictures as data URIs: most and least upweighted training images, reconstructions, traversals.

Each section is None when the run folder or the reloaded dataset cannot provide it; the reason
goes to the run's notes.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from debias.errors import UserError
from debias.groups import group_labels
from debias.report.run import Run

THUMBNAILS = 16  # most and least upweighted training images shown
RECONSTRUCTIONS = 8  # test images shown with their reconstructions (at most twice as many with many groups)
RECONSTRUCTIONS_PER_GROUP = 2
TRAVERSAL_DIMS = 6


def weighted_mask(weights: pd.DataFrame) -> np.ndarray:
    """Rows the weighting applies to: those with a log density (faces in face detection), else all."""
    if "log_density" in weights.columns and weights["log_density"].notna().any():
        return weights["log_density"].notna().to_numpy()
    return np.ones(len(weights), dtype=bool)


def data_uri(png: bytes | None) -> str | None:
    """A PNG as a data: URI (None stays None), so the page needs no file beside it."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def short_group(name: str) -> str:
    """'subgroup=dark|label=1' -> 'dark': the group columns' values, for captions."""
    values = [part.split("=", 1)[-1] for part in name.split("|") if not part.startswith("label=")]
    return " · ".join(values) if values else name


def pictures(run: Run, dataset, rows: np.ndarray | None) -> dict:
    """Thumbnails, reconstructions and traversals as data URIs, each section None when impossible.

    Equal weights (the `uniform` strategy) have no most or least upweighted images, so no thumbnails.
    """
    from debias.report import images

    pictures: dict = {"most": None, "least": None, "reconstructions": None, "traversals": None}
    if rows is not None and run.weights["weight"].nunique() > 1:
        weights = run.weights.reset_index(drop=True)
        train = dataset.train
        names = group_labels(train.attributes.iloc[rows].reset_index(drop=True), run.group_columns, train.labels[rows])
        candidates = np.flatnonzero(weighted_mask(weights))
        order = candidates[np.argsort(-weights["weight"].to_numpy()[candidates], kind="stable")]
        for key, chosen in (("most", order[:THUMBNAILS]), ("least", order[::-1][:THUMBNAILS])):
            pictures[key] = [
                {
                    "src": data_uri(images.png_bytes(images.upscale(train.images[rows[i]]))),
                    "weight": float(weights["weight"].iloc[i]),
                    "group": names.iloc[i],
                    "short": short_group(names.iloc[i]),
                    "sample_id": str(weights["sample_id"].iloc[i]),
                }
                for i in chosen
            ]
    if not run.has_checkpoint:
        return pictures
    try:
        model = images.load_dbvae(run.folder.checkpoint, run.settings)
    except (
        UserError,
        KeyError,
        TypeError,
        RuntimeError,
    ) as exc:  # an old or foreign checkpoint costs these sections only
        run.notes.append(
            f"The DB-VAE could not be rebuilt from checkpoint.pt ({type(exc).__name__}: {exc}); no reconstructions or traversals."
        )
        return pictures
    if dataset is not None:
        test = dataset.test
        names = group_labels(test.attributes, run.group_columns, test.labels)
        # The VAE only learned the positives' images in face detection; show those groups only.
        eligible = [
            g for g in sorted(names.unique()) if run.vae_on_all or test.labels[np.argmax(names.to_numpy() == g)] == 1
        ]
        per_group = max(1, min(RECONSTRUCTIONS_PER_GROUP, RECONSTRUCTIONS // max(1, len(eligible))))
        shown = []
        for group in eligible:
            members = np.flatnonzero(names.to_numpy() == group)
            shown.extend((group, i) for i in members[:per_group])
        shown = shown[: 2 * RECONSTRUCTIONS]
        if shown:
            index = np.array([i for _, i in shown])
            decoded = images.reconstructions(model, test.images[index])
            pictures["reconstructions"] = [
                {
                    "src": data_uri(
                        images.png_bytes(
                            images.grid(np.stack([[images.upscale(test.images[i])], [images.upscale(rec)]]), pad=3)
                        )
                    ),
                    "group": group,
                    "short": short_group(group),
                    "sample_id": str(test.sample_ids[i]),
                }
                for (group, i), rec in zip(shown, decoded)
            ]
    if run.latents is not None and run.latents.ndim == 2 and run.latents.shape[1] == model.latent_dim:
        latents = run.latents
        if (
            run.weights is not None
            and "label" in run.weights
            and len(run.weights) == len(latents)
            and not run.vae_on_all
        ):
            latents = latents[run.weights["label"].to_numpy() == 1]  # the latent space was fitted to the positives
        dims = images.varying_dimensions(latents, min(TRAVERSAL_DIMS, latents.shape[1]))
        strips = images.traversals(model, latents, dims)
        sd = np.nanstd(latents, axis=0)
        pictures["traversals"] = {
            "steps": [f"{t:+.0f} sd" if t else "mean" for t in images.TRAVERSAL_STEPS],
            "rows": [
                {
                    "dim": int(d),
                    "sd": float(sd[d]),
                    "src": data_uri(
                        images.png_bytes(images.grid(np.stack([[images.upscale(tile) for tile in strip]]), pad=3))
                    ),
                }
                for d, strip in zip(dims, strips)
            ],
        }
    elif run.latents is not None:
        run.notes.append("latents.npy does not match the checkpoint's latent size, so the report has no traversals.")
    return pictures
