"""The built-in weighting strategies, one `register_strategy` call each, in the order `--weighting` lists them.

Each entry is the whole of what the rest of debias knows about a strategy (debias.weighting.registry);
its log-weights function lives with the density it computes and is named as "module:function", so
that this file, like the registry, loads without torch.

`--weighting auto` (the default) tries uniform sampling, always, and the strategies marked
`in_auto_by_default`: Just Train Twice (`errors`) alone, chosen by measurement over nine testbeds where
its assumption holds and where it fails (BENCHMARKS.md, "Do the weights help?"). `classes` stays out:
on CelebA Young it recovered 0.79-0.88 of the oracle's gain but cost 4.7 points of accuracy, which
auto's do-no-harm rule refuses anyway. Any strategy can be named with --auto-strategies.
"""

from __future__ import annotations

from debias.weighting.registry import Caption, register_strategy

HISTOGRAM_SETTINGS = ("bins", "alpha", "combine", "keep_class_shares")
JOINT_SETTINGS = ("joint_method", "joint_dims", "joint_components", "knn_k", "joint_alpha", "keep_class_shares")
ERRORS_SETTINGS = ("errors_upweight", "errors_epoch", "keep_class_shares")

_JOINT_DENSITY = (
    "a joint density of the DB-VAE's latent means per class on their top {joint_dims} principal directions "
    "({joint_method})"
)

register_strategy(
    "histogram",
    "debias.weighting.histogram:histogram_strategy",
    description="the paper's per-dimension histograms of the latent means",
    reads_latents=True,
    reads=HISTOGRAM_SETTINGS,
    file_stem="alpha{alpha:g}-bins{bins}-{combine}",
    sharded="debias.weighting.sharded:histogram_shard_log_weights",
    caption=Caption(
        how="Weights from per-dimension histograms of the DB-VAE's latent means (the paper's method: alpha "
        "{alpha:g}, {bins} bins, combined by {combine}): an image whose latent code is rare along some dimension "
        "is drawn more often.",
        large_weights="Images whose latent code is rare along some dimension of the DB-VAE's latent space get "
        "large weights.",
        traversal_axes="the histograms behind the weights are taken along these axes",
    ),
)

register_strategy(
    "joint",
    "debias.weighting.joint:joint_strategy",
    description="per-class joint density of the latent means on their top principal directions",
    reads_latents=True,
    reads=JOINT_SETTINGS,
    caption=Caption(
        how="Weights from " + _JOINT_DENSITY + ": an image in a sparse region of the latent space is drawn more often.",
        large_weights="Images in sparse regions of the DB-VAE's latent space (within their class) get large weights.",
        traversal_axes="the joint density behind the weights is taken on the top principal directions of the "
        "latent means, which mix these axes",
    ),
)

register_strategy(
    "errors",
    "debias.weighting.errors:errors_strategy",
    description="Just Train Twice: upweight the early uniform classifier's training errors",
    reads_latents=False,
    needs_errors=True,
    reads=ERRORS_SETTINGS,
    in_auto_by_default=True,
    caption=Caption(
        how="Weights from an early classifier's errors: {errors}. The DB-VAE's latent space plays no part in them.",
        large_weights="Images the early uniform classifier got wrong get large weights.",
        measured="it helps where the early classifier's errors are the rare groups (0.62-0.89 of the group-balanced "
        "oracle's worst-group gain on the embedded data, a spurious trait and hard common faces, 3 seeds) and "
        "harms where they are wrong labels or hard images spread over everyone: with 10% flipped labels and a "
        'spurious trait it cost 37 points of accuracy, on CelebA Smiling 5-9 (BENCHMARKS.md, "Do the weights '
        'help?"). --weighting auto, the default, keeps it only when validation shows it helps.',
    ),
)

register_strategy(
    "errors+joint",
    "debias.weighting.combined:errors_joint_strategy",
    description="errors times the per-class joint latent density",
    reads_latents=True,
    needs_errors=True,
    reads=ERRORS_SETTINGS + JOINT_SETTINGS,
    caption=Caption(
        how="Weights from the product of two factors: {errors}, and " + _JOINT_DENSITY + ".",
        large_weights="Images the early uniform classifier got wrong get large weights, the more so in sparse "
        "regions of the DB-VAE's latent space.",
        latent_role="The joint-density factor of the weights is read off the DB-VAE's latent means; the errors "
        "factor does not depend on them.",
        traversal_axes="the joint-density factor is taken on the top principal directions of the latent means, "
        "which mix these axes",
    ),
)

register_strategy(
    "errors+latent",
    "debias.weighting.combined:errors_latent_strategy",
    description="errors smoothed along the latent directions that predict them",
    reads_latents=True,
    needs_errors=True,
    reads=ERRORS_SETTINGS,
    caption=Caption(
        how="Weights from an early classifier's errors smoothed over the DB-VAE's latent space: {errors}, spread "
        "by a per-class logistic probe of those errors on the latent means to the images that look like them.",
        large_weights="Images that look, in the DB-VAE's latent space, like those the early uniform classifier got "
        "wrong get large weights.",
        latent_role="The probe behind the weights reads the DB-VAE's latent means: what the latent space cannot "
        "tell apart, the weights cannot either.",
        traversal_axes="the probe behind the weights reads these latent means",
    ),
)

register_strategy(
    "classes",
    "debias.weighting.labels:classes_strategy",
    description="class balancing: every class the same total weight",
    reads_latents=False,
    scores_every_row=True,
    caption=Caption(
        how="Weights that balance the classes: each label gets an equal share of the draws (labels only, no latent "
        "space).",
        large_weights="Images of the rarer class get large weights.",
    ),
)

register_strategy(
    "groups",
    "debias.weighting.labels:groups_strategy",
    description="AIF360 reweighing by the true groups: P(g) P(y) / P(g, y)",
    reads_latents=False,
    needs_groups=True,
    scores_every_row=True,
    caption=Caption(
        how="Weights from the true group labels (--groups), which debias otherwise never uses for training.",
        large_weights="Images of the groups the group labels mark as rare get large weights.",
    ),
)

register_strategy(
    "balanced-groups",
    "debias.weighting.labels:balanced_groups_strategy",
    description="every true (group, label) cell the same total weight, as the oracle draws",
    reads_latents=False,
    needs_groups=True,
    scores_every_row=True,
    caption=Caption(
        how="Weights that balance the true --groups cells (group labels crossed with the label): each cell gets an "
        "equal share of the draws. They use the group labels, which debias otherwise never uses for training.",
        large_weights="Images of the rarest --groups cells get large weights.",
    ),
)

register_strategy(
    "uniform",
    "debias.weighting.labels:uniform_strategy",
    description="every weight 1 (no reweighting)",
    reads_latents=False,
    caption=Caption(how="No reweighting: every training image has weight 1.", large_weights="Every weight is 1."),
)
