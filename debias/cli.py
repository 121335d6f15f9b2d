"""The `debias` command line: parsing and calling the library, nothing more."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from debias.distributed import PeerError, is_main_process
from debias.errors import UserError
from debias.fit import FitConfig
from debias.weighting import AUTO, JOINT_METHODS, STRATEGIES, WeightingSettings


def _user_errors(func):
    """Turn UserError into one clear message and exit code 1, and Ctrl-C into one line and exit code 130.

    With `debias --debug ...` both propagate with their traceback instead. Under torchrun a
    PeerError (a failure rank 0 reports) ends the other ranks without printing it again.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            if debug:
                raise
            if isinstance(exc, PeerError) and not is_main_process():
                sys.exit(1)
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:
            if debug:
                raise
            detail = str(exc)
            click.echo("\nInterrupted." + (f" {detail}" if detail else ""), err=True)
            sys.exit(130)

    return wrapper


# The defaults of `debias fit` are those of the settings dataclasses, so they are stated once.
_FIT = FitConfig()
_WEIGHTING = WeightingSettings()
_STRATEGY_CHOICES = [*STRATEGIES, AUTO]


def parse_data_options(pairs: tuple[str, ...]) -> dict:
    """`--data-option KEY=VALUE` pairs -> loader keyword options; numbers become int or float.

        parse_data_options(("spurious=hat", "spurious_rate=0.9"))  # {"spurious": "hat", "spurious_rate": 0.9}
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UserError(f"--data-option takes KEY=VALUE (for example spurious=hat), got {pair!r}")
        value = value.strip()
        for convert in (int, float):
            try:
                options[key] = convert(value)
                break
            except ValueError:
                continue
        else:
            options[key] = {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return options


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@click.group()
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="debias")
def main(debug: bool) -> None:
    """debias: find what a face dataset under-represents and turn it into resampling weights."""


@main.command()
@click.option("--data", default="synthfaces", show_default=True, help="Dataset: synthfaces, celeba, a manifest .csv or a class-folder directory (see `debias datasets`).")
@click.option("--root", type=click.Path(), default=None, help="Folder holding the dataset files (CelebA).")
@click.option("--target", default=None, help="Attribute to predict (CelebA; default Blond_Hair).")
@click.option("--groups", default=None, help="Comma-separated attributes used only for evaluation (CelebA default: Male).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N images of each split.")
@click.option("--data-option", "data_option", multiple=True, metavar="KEY=VALUE",
              help="A dataset option, repeatable (synthfaces: spurious=hat|dark, spurious_rate=0.95, n_train=..., rare_rate=...).")
@click.option("--cache-dir", type=click.Path(), default=None, help="Decoded-image cache (default $DEBIAS_CACHE or ~/.cache/debias).")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Image-decoding processes for the first pass (default: CPU count, at most 8).")
@click.option("--vae-on", type=click.Choice(["all", "positives"]), default=None,
              help="Train the VAE terms on every image (all are faces) or on positives only (face detection). Default: the dataset's.")
@click.option("--epochs", type=int, default=_FIT.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_FIT.batch_size, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=_FIT.learning_rate, show_default=True, help="Adam learning rate.")
@click.option("--latent-dim", type=int, default=_FIT.latent_dim, show_default=True)
@click.option("--beta", type=float, default=_FIT.beta, show_default=True, help="Weight of the KL term.")
@click.option("--weighting", type=click.Choice(_STRATEGY_CHOICES), default=_WEIGHTING.strategy, show_default=True,
              help="Weighting strategy; auto trains a short run of each and keeps the best on validation.")
@click.option("--alpha", type=float, default=_WEIGHTING.alpha, show_default=True, help="Histogram smoothing; 0 = uniform over latent space, large = no debiasing.")
@click.option("--bins", type=int, default=_WEIGHTING.bins, show_default=True, help="Histogram bins per latent dimension.")
@click.option("--combine", type=click.Choice(["geometric", "product", "max"]), default=_WEIGHTING.combine, show_default=True, help="How per-dimension densities combine.")
@click.option("--cap", type=float, default=None, help="Largest weight, as a multiple of the mean weight.")
@click.option("--errors-upweight", type=float, default=_WEIGHTING.errors_upweight, show_default=True,
              help="errors strategies: weight of an early classifier's training error relative to a correct sample (JTT's lambda).")
@click.option("--errors-epoch", type=int, default=_WEIGHTING.errors_epoch, show_default=True,
              help="errors strategies: the uniform baseline's epoch whose training errors are upweighted "
                   "(a later one if its classifier errs more than always predicting the majority class).")
@click.option("--joint-method", type=click.Choice(list(JOINT_METHODS)), default=_WEIGHTING.joint_method, show_default=True,
              help="joint strategies: Gaussian mixture or k-nearest-neighbour density.")
@click.option("--joint-dims", type=int, default=_WEIGHTING.joint_dims, show_default=True, help="joint strategies: principal directions of the latent means.")
@click.option("--joint-components", type=int, default=_WEIGHTING.joint_components, show_default=True, help="joint strategies: mixture components per class.")
@click.option("--knn-k", type=int, default=_WEIGHTING.knn_k, show_default=True, help="joint strategies: neighbours of the k-NN density.")
@click.option("--joint-alpha", type=float, default=_WEIGHTING.joint_alpha, show_default=True,
              help="joint strategies: smoothing, relative to the median density (bounds a weight near 1/alpha times a typical one).")
@click.option("--auto-strategies", default=None, help="auto: comma-separated strategies to try (default: every strategy that reweights).")
@click.option("--auto-epochs", type=int, default=_FIT.auto_epochs, show_default=True, help="auto: epochs of each candidate's short run.")
@click.option("--auto-accuracy-budget", type=float, default=_FIT.auto_accuracy_budget, show_default=True,
              help="auto: points of validation accuracy a candidate may lose against the most accurate one and still be chosen.")
@click.option("--val-groups", default=None, metavar="ATTR[,ATTR]",
              help="auto: choose by worst-group accuracy over these attributes of the validation split (never used for training).")
@click.option("--image-size", type=int, default=_FIT.image_size, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda (under torchrun: each process its own GPU).")
@click.option("--compile", "compile_model", is_flag=True,
              help="Train through torch.compile (needs a C++ compiler on a CPU; costs a compilation per model).")
@click.option("--eval-batch-size", type=int, default=_FIT.eval_batch_size, show_default=True,
              help="Images per batch when encoding and predicting (a memory setting; training batches are --batch-size).")
@click.option("--models", default="uniform,dbvae,sampler,oracle", show_default=True,
              help="Models to train (dbvae always): uniform baseline, sampler (a plain loop over weights.csv), oracle (balances true groups).")
@click.option("--report", "write_report_too", is_flag=True, help="Write report.html and report.json into the run folder at the end.")
@click.option("--out", type=click.Path(), default=None, help="Run folder (default: a new folder under runs/).")
@click.option("--overwrite", is_flag=True, help="Allow writing into an existing, non-empty run folder.")
@click.option("--resume", type=click.Path(), default=None, metavar="RUN",
              help="Continue the interrupted fit in run folder RUN from its last checkpoint, with its saved settings.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_user_errors
def fit(data, root, target, groups, limit, data_option, cache_dir, workers, vae_on, epochs, batch_size, learning_rate, latent_dim, beta,
        weighting, alpha, bins, combine, cap, errors_upweight, errors_epoch, joint_method, joint_dims, joint_components, knn_k,
        joint_alpha, auto_strategies, auto_epochs, auto_accuracy_budget, val_groups, image_size, seed, device, compile_model, eval_batch_size, models,
        write_report_too, out, overwrite, resume, quiet):
    """Train the DB-VAE with adaptive resampling and a uniform baseline; write weights.csv and predictions.

    A checkpoint is written after every epoch; after Ctrl-C or a crash, `debias fit --resume RUN`
    continues where it stopped. `torchrun --nproc_per_node N -m debias fit ...` trains with N
    processes (DDP); --batch-size is then the batch of all processes together.
    """
    from debias.fit import FitConfig, resume_fit, run_fit
    from debias.weighting import WeightingSettings

    data_options = parse_data_options(data_option)
    named = {"root": root, "target": target, "groups": groups, "limit": limit, "cache_dir": cache_dir, "workers": workers}
    clash = sorted(k for k, v in named.items() if v is not None and k in data_options)
    if clash:
        raise UserError(f"--data-option {clash[0]}=... repeats --{clash[0].replace('_', '-')}; give it once")
    data_options.update({k: v for k, v in named.items() if v is not None})
    if quiet:
        data_options["progress"] = False
    config = FitConfig(
        data=data, data_options=data_options, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        latent_dim=latent_dim, beta=beta, image_size=image_size, seed=seed, device=device, compile=compile_model,
        eval_batch_size=eval_batch_size, models=tuple(m.strip() for m in models.split(",") if m.strip()),
        vae_on=vae_on, auto_strategies=_names(auto_strategies), auto_epochs=auto_epochs, auto_accuracy_budget=auto_accuracy_budget, val_groups=_names(val_groups),
        weighting=WeightingSettings(
            strategy=weighting, bins=bins, alpha=alpha, combine=combine, cap=cap, errors_upweight=errors_upweight,
            errors_epoch=errors_epoch, joint_method=joint_method, joint_dims=joint_dims, joint_components=joint_components,
            knn_k=knn_k, joint_alpha=joint_alpha,
        ),
    )
    if resume is None:
        result = run_fit(config, out=out, overwrite=overwrite, progress=not quiet)
    else:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UserError(f"--resume continues in its own run folder ({resume}); drop --out {out}")
        if overwrite:
            raise UserError("--overwrite cannot be combined with --resume, which continues the run in its folder")
        ctx = click.get_current_context()
        explicit = {name for name in ctx.params if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
        result = resume_fit(resume, config, explicit - {"resume", "out", "overwrite"}, progress=not quiet)
        if result.get("already_complete") and is_main_process():
            click.echo(f"{resume} holds a finished fit; nothing was left to resume.")
    if not is_main_process():
        return  # under torchrun rank 0 prints the summary and writes the report
    click.echo(format_summary(result))
    if write_report_too:
        from debias.report import write_report

        click.echo(f"Report: {write_report(result['run_dir'])}")


def format_summary(result: dict) -> str:
    """The closing table of `debias fit`: accuracy and worst-group accuracy per model on the test split."""
    test = result["results"]["test"]
    lines = [f"Run folder: {result['run_dir']}", "", f"{'test split':<12}{'accuracy':>10}{'worst group':>13}  worst group is"]
    for name, m in test.items():
        lines.append(f"{name:<12}{m['accuracy']:>10.3f}{m['worst_group_accuracy']:>13.3f}  {m['worst_group']}")
    w = result["final_weights"]
    selection = result.get("weighting_selection")
    if selection:
        criterion = selection["criterion"]
        lines += ["", f"--weighting auto chose {selection['chosen']} by validation {criterion.replace('_', ' ')}"
                      + (f" over {','.join(selection['val_groups'])}" if selection["val_groups"] else "")
                      + (f", within {selection['accuracy_budget']:g} points of the most accurate" if "accuracy_budget" in selection else "")
                      + ":"]
        for name, figures in selection["candidates"].items():
            mark = "*" if name == selection["chosen"] else " "
            lines.append(f" {mark} {name:<14}{figures[criterion]:>8.3f}   accuracy {figures['accuracy']:.3f}   ESS {figures['ess']:.2f}")
    elif result.get("weighting_strategy"):
        lines += ["", f"weighting: {result['weighting_strategy']}"]
    early = result.get("early_errors")
    if early:
        lines.append(f"early errors: the uniform baseline after epoch {early['epoch']}, {early['error_rate']:.1%} of the training "
                     f"split (always predicting the majority class: {early['majority_error_rate']:.1%})"
                     + ("" if early["informative"] else "; no epoch beat that, so the errors mark a whole class, not rare people"))
    lines.append("")
    lines.append(f"weights.csv: ESS {w['ess']:.2f} of N, max/min weight ratio {w['max_min_ratio']:.1f}, {result['seconds']:.0f} s in all")
    return "\n".join(lines)


@main.command()
def datasets() -> None:
    """List the datasets debias can read and how to point at each."""
    from debias.data.listing import describe_datasets

    click.echo(describe_datasets())


@main.command("weights")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--weighting", type=click.Choice(list(STRATEGIES)), default=None, help="Weighting strategy (default: the fit's).")
@click.option("--alpha", type=float, default=None, help="Histogram smoothing (default: the fit's).")
@click.option("--bins", type=int, default=None, help="Histogram bins per latent dimension (default: the fit's).")
@click.option("--combine", type=click.Choice(["geometric", "product", "max"]), default=None, help="How per-dimension densities combine (default: the fit's).")
@click.option("--cap", type=float, default=None, help="Largest weight, as a multiple of the mean weight (default: the fit's).")
@click.option("--no-cap", is_flag=True, help="Drop the cap the fit used.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output CSV (default: RUN/weights-alpha{A}-bins{B}-{combine}.csv).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (the fit's weights.csv only when --out names it).")
@_user_errors
def weights_command(run, weighting, alpha, bins, combine, cap, no_cap, out, overwrite):
    """Recompute weights from RUN's saved latents with other settings, without retraining."""
    from debias.reweight import reweight_run

    result = reweight_run(run, alpha=alpha, bins=bins, combine=combine, cap=cap, no_cap=no_cap, out=out, overwrite=overwrite,
                          strategy=weighting)
    click.echo(format_reweight(result))


def format_reweight(result: dict) -> str:
    """What `debias weights` prints: the new file, its settings, ESS and max/min ratio beside the fit's."""
    s, new, old = result["settings"], result["stats"], result["fit_stats"]
    cap = "none" if s["cap"] is None else f"{s['cap']:g}"
    how = f"alpha {s['alpha']:g}, bins {s['bins']}, combine {s['combine']}" if s.get("strategy", "histogram") == "histogram" else f"{s['strategy']}"
    return "\n".join([
        f"Wrote {result['path']} ({result['rows']} rows): {how}, cap {cap}",
        f"{'':<12}{'ESS of N':>10}{'max/min':>10}",
        f"{'new':<12}{new['ess']:>10.3f}{new['max_min_ratio']:>10.1f}",
        f"{'fit':<12}{old['ess']:>10.3f}{old['max_min_ratio']:>10.1f}",
    ])


@main.command("report")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(), default=None, help="Report file (default: RUN/report.html); its .json lands beside it.")
@click.option("--n-boot", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@_user_errors
def report_command(run, out, n_boot, seed):
    """Write report.html (one self-contained file) and report.json for RUN, without retraining."""
    import json

    from debias.report import write_report

    path = write_report(run, out=out, n_boot=n_boot, seed=seed)
    summary = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["summary"]
    click.echo(f"{summary}\n\nReport: {path}\nNumbers: {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
