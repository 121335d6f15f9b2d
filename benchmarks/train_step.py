"""One DB-VAE training step on CPU: debias's DBVAE against the public course's DB-VAE, per image.

Question (issue 5, item 3). How many images per second does one full DB-VAE training step
(forward, loss, backward, Adam step) process at 64x64, latent 100, batch 128, for debias's model
as `debias fit` runs it (debias.models.DBVAE in channels-last, DBVAELoss, inputs made by
debias.models.to_model_input from uint8 NHWC batches, the loop debias.train.train_one_epoch), and
for a PyTorch re-implementation of the public MIT 6.S191 "Debiasing" lab's DB-VAE (encoder: conv
12 k5 s2, BN, conv 24 k5 s2, BN, conv 48 k3 s2, BN, conv 72 k3 s2, BN, flatten, dense 512,
dense 2 * latent + 1; decoder: dense 4*4*72, reshape, transposed convs 48 k3 s2, 24 k3 s2,
12 k5 s2, 3 k5 s2; ReLU after every hidden conv and dense layer; its loss and plain train step)?
Layer list from aamini/introtodeeplearning, lab2/solutions/Part2_Debiasing_Solution.ipynb (commit
0428dfe5c541ffb339b056b9cf7b1591bb69b654); paddings as in the lab's PyTorch port.

Target: debias no slower per image than the course model at equal model size (parameter count).
debias's default width (16) has more parameters and about 1.7x the multiply-adds of the course
model, so the script also builds debias at the width whose parameter count is closest to the
course model (the apples-to-apples row), the course model at the filter count whose parameter
count is closest to debias's default, and debias at the width whose multiply-adds per image are
closest to the course model's. Two more rows measure candidate changes to the package without
touching it: the reconstruction error as a mean over (C, H, W) instead of flatten(1).mean(1), and
a decoder without batch norm (as the course's). Every model is timed in every round, in turn
(debias, course, debias, course, ...), after untimed warm-up steps; medians over rounds are
quoted, and for each comparison also the median of the per-round ratios (both models of a round
ran under the same load).

    python benchmarks/train_step.py                       # 12 rounds x 4 steps per model, torch's threads
    python benchmarks/train_step.py --threads 1
    python benchmarks/train_step.py --quick               # smoke run: seconds
    python benchmarks/train_step.py --diagnose            # adds memory-format variants of both models
    python benchmarks/train_step.py --profile all --threads 1   # where the time goes, per model (torch.profiler)
    python benchmarks/train_step.py --dbvae-vs-classifier       # issue 24: see below
    python benchmarks/train_step.py --dbvae-vs-classifier --profile all --threads 1

Question (issue 24, with --dbvae-vs-classifier). How much does one DB-VAE step cost against one step
of fit's uniform classifier (the same encoder trunk, a class logit only), when the DB-VAE decodes
every row (attribute tasks: every image is a face) and when it decodes the faces only (face
detection, half the batch here)? Same rounds and medians as above; the ratio is of step times.

Results and the machine they were measured on: BENCHMARKS.md, "Training step".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F
from machine import machine_line
from torch import nn

import debias.models.losses as debias_losses
from debias.models import to_model_input
from debias.models.losses import DBVAELoss, classifier_loss
from debias.models.networks import DBVAE, Classifier
from debias.train import train_one_epoch

# ---------------------------------------------------------------------------------------------
# The reference: the public course's DB-VAE, written in PyTorch from the lab's layer list
# (aamini/introtodeeplearning, lab2/solutions/Part2_Debiasing_Solution.ipynb: make_standard_classifier,
# make_face_decoder_network, DB_VAE, vae_loss_function, debiasing_loss_function). Keras
# Conv2D(..., padding="same", activation="relu") then BatchNormalization() is conv -> ReLU -> BN;
# "same" padding with stride 2 on even sizes is padding (k - 1) // 2 here, and the transposed
# convolutions use output_padding=1 to double the size exactly, as the lab's PyTorch port does.
# ---------------------------------------------------------------------------------------------


class CourseDBVAE(nn.Module):
    """The lab's DB-VAE: standard CNN encoder with 2 * latent + 1 outputs, mirrored decoder."""

    def __init__(self, latent_dim: int = 100, n_filters: int = 12, image_size: int = 64):
        super().__init__()
        self.latent_dim, self.n_filters = latent_dim, n_filters
        n = n_filters
        feat = image_size // 16

        def conv(c_in, c_out, k):
            return [nn.Conv2d(c_in, c_out, k, 2, (k - 1) // 2), nn.ReLU(), nn.BatchNorm2d(c_out)]

        def deconv(c_in, c_out, k, relu=True):
            layers = [nn.ConvTranspose2d(c_in, c_out, k, 2, (k - 1) // 2, output_padding=1)]
            return layers + [nn.ReLU()] if relu else layers

        self.encoder = nn.Sequential(
            *conv(3, n, 5),
            *conv(n, 2 * n, 5),
            *conv(2 * n, 4 * n, 3),
            *conv(4 * n, 6 * n, 3),
            nn.Flatten(),
            nn.Linear(feat * feat * 6 * n, 512),
            nn.ReLU(),
            nn.Linear(512, 2 * latent_dim + 1),
        )
        self.feat = feat
        self.decoder_dense = nn.Sequential(nn.Linear(latent_dim, feat * feat * 6 * n), nn.ReLU())
        # The TF lab's partial() gives the last transposed conv a ReLU too; its PyTorch port leaves
        # the output linear. Either way it is one elementwise op on the output.
        self.decoder_conv = nn.Sequential(
            *deconv(6 * n, 4 * n, 3),
            *deconv(4 * n, 2 * n, 3),
            *deconv(2 * n, n, 5),
            *deconv(n, 3, 5, relu=False),
        )

    def encode(self, x):
        out = self.encoder(x)
        k = self.latent_dim
        return out[:, 0:1], out[:, 1 : k + 1], out[:, k + 1 :]

    def forward(self, x):
        y_logit, z_mean, z_logsigma = self.encode(x)
        z = z_mean + torch.exp(0.5 * z_logsigma) * torch.randn_like(z_mean)
        recon = self.decoder_conv(self.decoder_dense(z).view(-1, 6 * self.n_filters, self.feat, self.feat))
        return y_logit, z_mean, z_logsigma, recon


def course_loss(x, x_recon, y, y_logit, mu, logsigma, kl_weight=0.0005):
    """The lab's debiasing_loss_function: mean(BCE + 1[face] * (kl_weight * KL + L1 reconstruction))."""
    latent_loss = 0.5 * torch.sum(torch.exp(logsigma) + mu.pow(2) - 1.0 - logsigma, dim=1)
    reconstruction_loss = torch.mean(torch.abs(x - x_recon), dim=(1, 2, 3))
    vae_loss = kl_weight * latent_loss + reconstruction_loss
    classification_loss = F.binary_cross_entropy_with_logits(y_logit, y, reduction="none")[:, 0]
    face_indicator = (y[:, 0] == 1.0).float()
    return torch.mean(classification_loss + face_indicator * vae_loss)


# ---------------------------------------------------------------------------------------------


# A candidate change to debias.models.losses.reconstruction_error, measured here, not in the package:
# the package computes (x - x_hat).abs().flatten(1).mean(dim=1). On channels-last tensors flatten(1)
# cannot be a view, so it copies the [B, 3, 64, 64] error to NCHW order, and its gradient comes back
# NCHW into the channels-last sigmoid and last transposed convolution (mixed-layout backward ops).
# A mean over dims (1, 2, 3) is the same number without the copy (equal to ~3e-8 in float32).
FIX_TAG = "+ recon mean(1,2,3)"


def reconstruction_error_mean_dims(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (x - x_hat).abs().mean(dim=(1, 2, 3))


@contextlib.contextmanager
def patched_reconstruction_error():
    original = debias_losses.reconstruction_error
    debias_losses.reconstruction_error = reconstruction_error_mean_dims  # DBVAELoss looks it up per call
    try:
        yield
    finally:
        debias_losses.reconstruction_error = original


# `debias fit` in face detection: the decoder runs on the faces only (labels alternate, so half the batch).
FACES_TAG = "faces decoded"

# A second candidate, a model change rather than a pure speed change: the course's decoder has no
# batch norm, debias's has three (after each hidden transposed convolution). Built here by replacing
# each of them by a bias on the transposed convolution. Whether training quality holds would need
# benchmarks/fit_seeds.py; this only measures what the layers cost.
NO_DECODER_BN_TAG = "no decoder BN"


def without_decoder_batchnorm(model: DBVAE) -> DBVAE:
    for block in model.decoder.upsample:
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            old = block[0]
            block[0] = nn.ConvTranspose2d(
                old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=True
            )
            block[1] = nn.Identity()
    return model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_macs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds per image of one forward pass (conv, transposed conv, linear layers)."""
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += output.numel() * k
        elif isinstance(module, nn.ConvTranspose2d):
            total[0] += inputs[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0] / len(x)


def closest(candidates, target, size_of):
    return min(candidates, key=lambda c: abs(size_of(c) - target))


class Runner:
    """One model with its optimizer and a fixed batch; `run(steps)` trains `steps` steps."""

    def __init__(self, name, model, kind, batch_uint8, labels, channels_last, lr=1e-3, beta=0.01):
        self.name, self.kind = name, kind
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.channels_last = channels_last
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.params = n_params(self.model)
        if kind in ("debias", "debias-fix", "debias-faces", "classifier"):
            # Exactly what `debias fit` hands train_one_epoch: uint8 [B, H, W, 3] and int64 labels.
            # to_model_input's permuted view of it is channels-last. The DB-VAE decodes every row as
            # the course's does (vae_on_all, an attribute task), or in face detection the faces only
            # (half the batch); the classifier is fit's uniform baseline.
            self.y = labels
            self.criterion = {
                "classifier": classifier_loss,
                "debias-faces": DBVAELoss(beta, vae_on_all=False),
            }.get(kind, DBVAELoss(beta, vae_on_all=True))
            if channels_last:
                self.x_uint8 = batch_uint8
                probe = to_model_input(self.x_uint8[:2])
            else:
                # Diagnostic: a contiguous NCHW float input (the uint8 batch permuted once, outside timing).
                self.x_uint8_nchw = batch_uint8.permute(0, 3, 1, 2).contiguous()
                probe = self.x_uint8_nchw[:2].float().div_(255.0)
        else:
            # The lab's loader hands float32 NCHW batches: made once, outside timing (favours it).
            x = batch_uint8.permute(0, 3, 1, 2).float().div(255.0)
            self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
            self.y = labels.float()[:, None]
            probe = self.x[:2]
        self.macs = forward_macs(copy.deepcopy(self.model).eval(), probe)

    def run(self, steps: int) -> None:
        if self.kind == "debias-fix":
            with patched_reconstruction_error():
                train_one_epoch(
                    self.model, self.criterion, self.optimizer, [(self.x_uint8, self.y)] * steps, torch.device("cpu")
                )
        elif self.kind in ("debias", "debias-faces", "classifier"):
            if self.channels_last:
                train_one_epoch(
                    self.model, self.criterion, self.optimizer, [(self.x_uint8, self.y)] * steps, torch.device("cpu")
                )
            else:
                # Same loop body as train_one_epoch, with an NCHW-contiguous float input.
                for _ in range(steps):
                    x = self.x_uint8_nchw.float().div_(255.0)
                    outputs = self.model(x)
                    terms = self.criterion(outputs, x, self.y)
                    self.optimizer.zero_grad(set_to_none=True)
                    terms["total"].backward()
                    self.optimizer.step()
        else:
            for _ in range(steps):  # the lab's debiasing_train_step and its loss read-back
                self.optimizer.zero_grad()
                y_logit, z_mean, z_logsigma, x_recon = self.model(self.x)
                loss = course_loss(self.x, x_recon, self.y, y_logit, z_mean, z_logsigma)
                loss.backward()
                self.optimizer.step()
                loss.detach().cpu().numpy()


OP_CLASSES = (
    ("conv", ("convolution", "conv2d", "conv_transpose")),
    ("batchnorm", ("batch_norm",)),
    ("relu/sigmoid", ("relu", "clamp_min", "threshold", "sigmoid")),
    ("linear", ("addmm", "aten::mm", "aten::bmm", "aten::linear")),
    ("copy/layout", ("copy_", "contiguous", "clone", "aten::to", "_to_copy", "reorder")),
)


def _op_class(name: str) -> str:
    for label, keys in OP_CLASSES:
        if any(key in name for key in keys):
            return label
    return "other"


def _phase(event) -> str:
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return "optimizer"
        if parent.name.startswith("autograd::engine::evaluate_function"):
            return "backward"
        parent = parent.cpu_parent
    return "forward+loss"


def profile(runner: Runner, steps: int) -> dict:
    """Self CPU milliseconds per step, by phase and by class of op (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    runner.run(2)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.run(steps)
    table: dict = {}
    for event in prof.events():
        key = (_phase(event), _op_class(event.name))
        table[key] = table.get(key, 0.0) + event.self_cpu_time_total / 1000 / steps
    return table


def print_profiles(tables: dict) -> None:
    classes = [label for label, _ in OP_CLASSES] + ["other"]
    phases = ("forward+loss", "backward", "optimizer")
    print("torch.profiler, self CPU ms per training step, by phase and op class")
    print(f"{'model':<34}{'phase':<14}" + "".join(f"{c:>14}" for c in classes) + f"{'total':>10}")
    for name, table in tables.items():
        for phase in phases + ("all",):
            row = [
                sum(v for (p, c), v in table.items() if c == cls and (phase == "all" or p == phase)) for cls in classes
            ]
            print(
                f"{name if phase == phases[0] else '':<34}{phase:<14}"
                + "".join(f"{v:>14.1f}" for v in row)
                + f"{sum(row):>10.1f}"
            )


def main() -> None:
    """Build the models, time them in alternating rounds and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="debias's width as fit runs it (FitConfig.width)")
    parser.add_argument("--filters", type=int, default=12, help="the course's n_filters")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per model per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model before the first round")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also time debias in NCHW-contiguous layout and the course model in channels-last",
    )
    parser.add_argument(
        "--no-fix",
        action="store_true",
        help=f"leave out the two candidate-change rows ({FIX_TAG}; {NO_DECODER_BN_TAG})",
    )
    parser.add_argument(
        "--profile",
        metavar="NAMES",
        default=None,
        help="instead of timing: torch.profiler breakdown of these models ('all', or names from the table, comma-separated)",
    )
    parser.add_argument(
        "--dbvae-vs-classifier",
        action="store_true",
        help="instead of the course comparison: fit's uniform classifier against the DB-VAE decoding every row "
        "and decoding the faces only (face detection), all at --width",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 32, 2 rounds of 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds, args.steps, args.warmup = 32, 2, 2, 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    s, k = args.image_size, args.latent
    batch_uint8 = torch.randint(0, 256, (args.batch, s, s, 3), dtype=torch.uint8)
    labels = (torch.arange(args.batch) % 2).long()

    course_size = n_params(CourseDBVAE(k, args.filters, s))
    debias_size = n_params(DBVAE(k, s, args.width))
    width_eq = closest(range(4, 33), course_size, lambda w: n_params(DBVAE(k, s, w)))
    filters_eq = closest(range(4, 33), debias_size, lambda n: n_params(CourseDBVAE(k, n, s)))

    def debias_model(w):
        torch.manual_seed(0)
        return DBVAE(k, s, w)

    def course_model(n):
        torch.manual_seed(0)
        return CourseDBVAE(k, n, s)

    def debias_macs(w):
        return forward_macs(DBVAE(k, s, w).eval(), torch.rand(2, 3, s, s))

    width_macs = closest(
        range(4, 33), forward_macs(CourseDBVAE(k, args.filters, s).eval(), torch.rand(2, 3, s, s)), debias_macs
    )
    specs = [
        (f"debias w{args.width}", "debias", lambda: debias_model(args.width), True),
        (f"course n{args.filters}", "course", lambda: course_model(args.filters), False),
        (f"debias w{width_eq}", "debias", lambda: debias_model(width_eq), True),
        (f"course n{filters_eq}", "course", lambda: course_model(filters_eq), False),
        (f"debias w{width_macs}", "debias", lambda: debias_model(width_macs), True),
    ]
    if not args.no_fix:
        specs.append((f"debias w{width_eq} {FIX_TAG}", "debias-fix", lambda: debias_model(width_eq), True))
        specs.append(
            (
                f"debias w{width_eq} {NO_DECODER_BN_TAG}",
                "debias",
                lambda: without_decoder_batchnorm(debias_model(width_eq)),
                True,
            )
        )
    if args.diagnose:
        specs += [
            (f"debias w{width_eq} NCHW", "debias", lambda: debias_model(width_eq), False),
            (f"course n{args.filters} channels-last", "course", lambda: course_model(args.filters), True),
        ]
    if args.dbvae_vs_classifier:

        def classifier_model():
            torch.manual_seed(0)
            return Classifier(s, args.width)

        specs = [
            (f"classifier w{args.width}", "classifier", classifier_model, True),
            (f"debias w{args.width}", "debias", lambda: debias_model(args.width), True),
            (f"debias w{args.width} {FACES_TAG}", "debias-faces", lambda: debias_model(args.width), True),
        ]
    seen, unique = set(), []
    for spec in specs:  # width_eq may equal --width, filters_eq may equal --filters
        if spec[0] not in seen:
            seen.add(spec[0])
            unique.append(spec)
    runners = [Runner(name, make(), kind, batch_uint8, labels, cl) for name, kind, make, cl in unique]

    if args.profile:
        names = [r.name for r in runners] if args.profile == "all" else [n.strip() for n in args.profile.split(",")]
        unknown = [n for n in names if n not in {r.name for r in runners}]
        if unknown:
            parser.error(f"--profile takes 'all' or names from {[r.name for r in runners]}, got {unknown}")
        print(f"torch threads {torch.get_num_threads()}, batch {args.batch}, load average {os.getloadavg()[0]:.1f}")
        print_profiles({r.name: profile(r, max(args.steps, 3)) for r in runners if r.name in names})
        return

    load_before = os.getloadavg()
    for r in runners:
        r.run(args.warmup)
    times = {r.name: [] for r in runners}
    for _ in range(args.rounds):
        for r in runners:
            start = time.perf_counter()
            r.run(args.steps)
            times[r.name].append(time.perf_counter() - start)
    load_after = os.getloadavg()

    ips = {name: [args.steps * args.batch / t for t in ts] for name, ts in times.items()}
    med = {name: statistics.median(v) for name, v in ips.items()}
    print(machine_line(load_before, load_after))
    print(
        f"one training step: batch {args.batch}, {s}x{s}, latent {k}; {args.rounds} rounds x {args.steps} steps "
        f"per model, alternating, after {args.warmup} warm-up steps; images/s = steps x batch / seconds"
    )
    ref = f"classifier w{args.width}" if args.dbvae_vs_classifier else f"course n{args.filters}"
    print(
        f"{'model':<34}{'layout':>14}{'params':>11}{'fwd MMAC/img':>14}{'img/s median':>14}{'(min-max)':>17}{'vs ' + ref:>18}"
    )
    for r in runners:
        v = ips[r.name]
        layout = "channels-last" if r.channels_last else "NCHW"
        print(
            f"{r.name:<34}{layout:>14}{r.params:>11,}{r.macs / 1e6:>14.2f}{med[r.name]:>14.0f}"
            f"{f'({min(v):.0f}-{max(v):.0f})':>17}{med[r.name] / med[ref]:>17.2f}x"
        )
    if args.dbvae_vs_classifier:
        print("a DB-VAE step's time / a classifier step's (= classifier img/s / DB-VAE img/s):")
        for ours in (f"debias w{args.width}", f"debias w{args.width} {FACES_TAG}"):
            rr = [b / a for a, b in zip(ips[ours], ips[ref])]
            print(
                f"  {ours}: {med[ref] / med[ours]:.2f}x; per-round ratios median {statistics.median(rr):.2f} "
                f"({min(rr):.2f}-{max(rr):.2f})"
            )
        return
    print("comparisons (ratio = debias img/s / course img/s, >= 1 meets the target):")
    pairs = [
        (f"debias w{width_eq}", ref, "equal size (params), apples to apples"),
        (f"debias w{width_eq} {FIX_TAG}", ref, "equal size, with the candidate loss change"),
        (f"debias w{width_eq} {FIX_TAG}", f"debias w{width_eq}", "the candidate loss change alone (debias vs debias)"),
        (f"debias w{width_eq} {NO_DECODER_BN_TAG}", ref, "equal size, decoder without batch norm like the course's"),
        (
            f"debias w{width_eq} {NO_DECODER_BN_TAG}",
            f"debias w{width_eq}",
            "the decoder batch norm alone (debias vs debias)",
        ),
        (f"debias w{width_macs}", ref, "equal multiply-adds per image"),
        (f"debias w{args.width}", f"course n{filters_eq}", "equal size the other way"),
        (f"debias w{args.width}", ref, "as shipped: fit's default width vs the course model"),
    ]
    for ours, theirs, what in pairs:
        if ours in med and theirs in med:
            # Per-round ratios too: both models of a round saw the same load.
            rr = [a / b for a, b in zip(ips[ours], ips[theirs])]
            print(
                f"  {ours} / {theirs}: {med[ours] / med[theirs]:.2f}x; per-round ratios median {statistics.median(rr):.2f} "
                f"({min(rr):.2f}-{max(rr):.2f}); {what}"
            )


if __name__ == "__main__":
    main()
