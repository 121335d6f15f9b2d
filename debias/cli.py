"""The `debias` command line: parsing and calling the library, nothing more."""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, replace
from pathlib import Path

import click

from debias import oserrors
from debias.cli_options import explicit_params, parse_data_options, setting_options, settings_from_params
from debias.data.options import OPTION_FLAGS, DataFlags
from debias.errors import PeerError, UserError
from debias.fit.config import FitConfig
from debias.summary import format_recompute, format_summary
from debias.weighting import WeightingSettings


def _user_errors(func):
    """Turn UserError and OSError into one clear message and exit code 1, and Ctrl-C into one line and exit code 130.

    OSErrors (a full disk, a path too long, a permission, a symbolic link loop) are put in words
    by debias.oserrors. With `debias --debug ...` all of them propagate with their traceback
    instead. Under torchrun a PeerError (a failure rank 0 reports) ends the other ranks without
    printing it again.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            if debug:
                raise
            if isinstance(exc, PeerError) and not _is_main_process():
                sys.exit(1)
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            if debug:
                raise
            raise click.ClickException(oserrors.message(exc)) from None
        except KeyboardInterrupt as exc:
            if debug:
                raise
            detail = str(exc)
            click.echo("\nInterrupted." + (f" {detail}" if detail else ""), err=True)
            sys.exit(130)

    return wrapper


def _is_main_process() -> bool:
    # Imported here: torch.distributed would load the training stack for `debias --help` too.
    from debias.distributed import is_main_process

    return is_main_process()


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
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    default=None,
    metavar="FILE",
    help="Settings from a TOML or JSON file, or a run's config.json (or its folder); options given here override it.",
)
@_user_errors
def fit(data_option, write_report_too, out, overwrite, resume, quiet, config_file, **settings):
    """Train the DB-VAE with adaptive resampling and a uniform baseline; write weights.csv and predictions.

    A checkpoint is written after every epoch; after Ctrl-C or a crash, `debias fit --resume RUN`
    continues where it stopped. `debias fit --config RUN/config.json --seed 1 --out NEW` repeats
    RUN's settings with one change. `torchrun --nproc_per_node N -m debias fit ...` trains with N
    processes (DDP); --batch-size is then the batch of all processes together.
    """
    from debias.fit import resume_fit, run_fit
    from debias.fit.settings_file import config_from_file

    data_options = parse_data_options(data_option)
    for key in data_options:
        if key in OPTION_FLAGS:
            raise UserError(f"--data-option {key}=... has a flag of its own: give {OPTION_FLAGS[key]} instead")
    flags = {k: v for k, v in asdict(settings_from_params(DataFlags, settings)).items() if v is not None}
    if config_file is None:
        config = replace(settings_from_params(FitConfig, settings), data_options={**data_options, **flags})
    else:
        if resume is not None:
            raise UserError("--resume continues with the run's own settings; drop --config")
        # The file's settings, with the options given on the command line on top.
        base = config_from_file(config_file)
        given = explicit_params(click.get_current_context())
        config = settings_from_params(FitConfig, {k: v for k, v in settings.items() if k in given}, base=base)
        config = replace(config, data_options={**base.data_options, **data_options, **flags})
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
        if result.get("already_complete") and _is_main_process():
            click.echo(f"{resume} holds a finished fit; nothing was left to resume.")
    if not _is_main_process():
        return  # under torchrun rank 0 prints the summary and writes the report
    click.echo(format_summary(result))
    if write_report_too:
        from debias.report import write_report

        click.echo(f"Report: {write_report(result['run_dir'])}")


@main.command()
@_user_errors
def datasets() -> None:
    """List the datasets debias can read and how to point at each."""
    from debias.data.listing import describe_datasets

    click.echo(describe_datasets())


def registered_strategies() -> tuple[str, ...]:
    """The strategies `debias weights` can compute from a run's files (every one but auto, which trains)."""
    from debias.weighting import STRATEGIES

    return tuple(STRATEGIES)


@main.command("weights")
@click.argument("run", type=click.Path(file_okay=False))
@setting_options(
    WeightingSettings,
    unset="Default: the fit's.",
    replaced={"strategy": {"choices": registered_strategies, "help": "Weighting strategy."}},
)
@click.option("--no-cap", is_flag=True, help="Drop the cap the fit used.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output CSV (default: RUN/weights-alpha{A}-bins{B}-{combine}.csv, or RUN/weights-{strategy}....csv).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing output file (the fit's weights.csv only when --out names it).",
)
@_user_errors
def weights_command(run, no_cap, out, overwrite, **settings):
    """Recompute weights from RUN's saved latents with any strategy and settings, without retraining.

    Strategies that use errors reuse the early classifier's predictions the fit saved; the group
    strategies read the group columns of RUN/weights.csv. When RUN lacks them, the message says
    which fit makes them.
    """
    from debias.recompute import recompute_weights

    result = recompute_weights(run, out=out, overwrite=overwrite, no_cap=no_cap, **settings)
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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing files at --out that are not reports written by debias (a run's own files never).",
)
@_user_errors
def report_command(runs, out, baseline, resamples, seed, overwrite):
    """Write report.html (one self-contained file), report.json and groups.csv for RUN, without retraining.

    With several runs (debias report RUN1 RUN2 ... --out compare.html), one page puts them side by
    side, each tested against the baseline run on the same test images.
    """
    import json

    from debias.report import write_comparison, write_report
    from debias.report.exports import groups_csv_path

    if len(runs) > 1 or baseline is not None:
        path = write_comparison(
            list(runs), out or "compare.html", baseline, resamples=resamples, seed=seed, overwrite=overwrite
        )
        summary = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["summary"]
        click.echo("\n".join(summary) + ("\n\n" if summary else "") + f"Comparison: {path}")
        return
    path = write_report(runs[0], out=out, resamples=resamples, seed=seed, overwrite=overwrite)
    report = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    warnings = "".join(f"Warning: {w}\n" for w in report["warnings"])
    numbers = f"{path.with_suffix('.json')}, {groups_csv_path(path.with_suffix('.json'))}"
    click.echo(f"{warnings}{report['summary']}\n\nReport: {path}\nNumbers: {numbers}")


if __name__ == "__main__":
    main()
