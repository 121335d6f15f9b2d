"""The `debias` command line: parsing and calling the library, nothing more."""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, replace
from pathlib import Path

import click

from debias.cli_options import explicit_params, parse_data_options, setting_options, settings_from_params
from debias.data.options import OPTION_FLAGS, DataFlags
from debias.distributed import PeerError, is_main_process
from debias.errors import UserError
from debias.fit import FitConfig
from debias.summary import format_recompute, format_summary
from debias.weighting import COMBINATIONS, STRATEGIES


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


@click.group()
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="debias")
def main(debug: bool) -> None:
    """debias: find what a face dataset under-represents and turn it into resampling weights."""


@main.command()
@setting_options(FitConfig, only=("data",))
@setting_options(DataFlags)
@click.option(
    "--data-option",
    "data_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="A dataset option, repeatable (synthfaces: spurious=hat|dark, spurious_rate=0.95, n_train=..., rare_rate=...).",
)
@setting_options(FitConfig, exclude=("data",))
@click.option(
    "--report",
    "write_report_too",
    is_flag=True,
    help="Write report.html and report.json into the run folder at the end.",
)
@click.option("--out", type=click.Path(), default=None, help="Run folder (default: a new folder under runs/).")
@click.option("--overwrite", is_flag=True, help="Allow writing into an existing, non-empty run folder.")
@click.option(
    "--resume",
    type=click.Path(),
    default=None,
    metavar="RUN",
    help="Continue the interrupted fit in run folder RUN from its last checkpoint, with its saved settings.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_user_errors
def fit(data_option, write_report_too, out, overwrite, resume, quiet, **settings):
    """Train the DB-VAE with adaptive resampling and a uniform baseline; write weights.csv and predictions.

    A checkpoint is written after every epoch; after Ctrl-C or a crash, `debias fit --resume RUN`
    continues where it stopped. `torchrun --nproc_per_node N -m debias fit ...` trains with N
    processes (DDP); --batch-size is then the batch of all processes together.
    """
    from debias.fit import resume_fit, run_fit

    data_options = parse_data_options(data_option)
    for key in data_options:
        if key in OPTION_FLAGS:
            raise UserError(f"--data-option {key}=... has a flag of its own: give {OPTION_FLAGS[key]} instead")
    flags = {k: v for k, v in asdict(settings_from_params(DataFlags, settings)).items() if v is not None}
    config = replace(settings_from_params(FitConfig, settings), data_options={**data_options, **flags})
    if resume is None:
        result = run_fit(config, out=out, overwrite=overwrite, progress=not quiet)
    else:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UserError(f"--resume continues in its own run folder ({resume}); drop --out {out}")
        if overwrite:
            raise UserError("--overwrite cannot be combined with --resume, which continues the run in its folder")
        explicit = explicit_params(click.get_current_context())
        if explicit & ({"data_option"} | set(OPTION_FLAGS)):
            explicit.add("data_options")
        result = resume_fit(resume, config, explicit, progress=not quiet)
        if result.get("already_complete") and is_main_process():
            click.echo(f"{resume} holds a finished fit; nothing was left to resume.")
    if not is_main_process():
        return  # under torchrun rank 0 prints the summary and writes the report
    click.echo(format_summary(result))
    if write_report_too:
        from debias.report import write_report

        click.echo(f"Report: {write_report(result['run_dir'])}")


@main.command()
def datasets() -> None:
    """List the datasets debias can read and how to point at each."""
    from debias.data.listing import describe_datasets

    click.echo(describe_datasets())


@main.command("weights")
@click.argument("run", type=click.Path(file_okay=False))
@click.option(
    "--weighting", type=click.Choice(list(STRATEGIES)), default=None, help="Weighting strategy (default: the fit's)."
)
@click.option("--alpha", type=float, default=None, help="Histogram smoothing (default: the fit's).")
@click.option("--bins", type=int, default=None, help="Histogram bins per latent dimension (default: the fit's).")
@click.option(
    "--combine",
    type=click.Choice(list(COMBINATIONS)),
    default=None,
    help="How per-dimension densities combine (default: the fit's).",
)
@click.option(
    "--cap", type=float, default=None, help="Largest weight, as a multiple of the mean weight (default: the fit's)."
)
@click.option("--no-cap", is_flag=True, help="Drop the cap the fit used.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output CSV (default: RUN/weights-alpha{A}-bins{B}-{combine}.csv).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing output file (the fit's weights.csv only when --out names it).",
)
@_user_errors
def weights_command(run, weighting, alpha, bins, combine, cap, no_cap, out, overwrite):
    """Recompute weights from RUN's saved latents with other settings, without retraining."""
    from debias.recompute import recompute_weights

    result = recompute_weights(
        run,
        alpha=alpha,
        bins=bins,
        combine=combine,
        cap=cap,
        no_cap=no_cap,
        out=out,
        overwrite=overwrite,
        strategy=weighting,
    )
    click.echo(format_recompute(result))


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Report file (default: RUN/report.html; its .json and groups.csv land beside it). "
    "With several runs: the comparison page (default: compare.html).",
)
@click.option(
    "--baseline",
    type=click.Path(file_okay=False),
    default=None,
    metavar="RUN",
    help="With several runs: the run the others are tested against (default: the first).",
)
@click.option(
    "--resamples",
    "--n-boot",
    "resamples",
    type=click.IntRange(min=100),
    default=9999,
    show_default=True,
    help="Random swaps of the paired permutation test of worst-group accuracy.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutation test.")
@_user_errors
def report_command(runs, out, baseline, resamples, seed):
    """Write report.html (one self-contained file), report.json and groups.csv for RUN, without retraining.

    With several runs (debias report RUN1 RUN2 ... --out compare.html), one page puts them side by
    side, each tested against the baseline run on the same test images.
    """
    import json

    from debias.report import write_comparison, write_report
    from debias.report.exports import groups_csv_path

    if len(runs) > 1 or baseline is not None:
        path = write_comparison(list(runs), out or "compare.html", baseline, resamples=resamples, seed=seed)
        summary = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["summary"]
        click.echo("\n".join(summary) + ("\n\n" if summary else "") + f"Comparison: {path}")
        return
    path = write_report(runs[0], out=out, resamples=resamples, seed=seed)
    report = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    warnings = "".join(f"Warning: {w}\n" for w in report["warnings"])
    numbers = f"{path.with_suffix('.json')}, {groups_csv_path(path.with_suffix('.json'))}"
    click.echo(f"{warnings}{report['summary']}\n\nReport: {path}\nNumbers: {numbers}")


if __name__ == "__main__":
    main()
