"""`debias fit`: settings -> dataset -> trained models -> run folder (see debias.run_dir for its files).

The rooms, each one job, in the order a fit uses them; each imports only rooms above it:

    config.py      FitConfig (every setting, declared once), MODELS and validate(); loads without torch
    device.py      which torch device, one GPU per torchrun process
    draws.py       how each model draws its training rows (uniform, DB-VAE density, weights file, oracle)
    trainer.py     one model's epoch loop: learning-rate schedule, NaN checks, DDP and compile
    evaluation.py  predictions and accuracy per group on a split
    auto.py        `--weighting auto`: a short run per candidate strategy, the choice on validation
    checkpoint.py  checkpoint.pt: what a fit has done so far, the data's fingerprint
    run.py         the phases of a fit, in order; run_fit
    resume.py      resume_fit: continue a stopped fit with its saved settings
    errors.py      how a fit stops early (non-finite loss, failed compile, Ctrl-C)

    result = run_fit(FitConfig(epochs=2), out="runs/x")
    result["results"]["test"]["dbvae"]["worst_group_accuracy"]

The names below load their module on first use (PEP 562), so `debias.fit.config` (the settings)
is importable without the training stack.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FitConfig": "debias.fit.config",
    "MODELS": "debias.fit.config",
    "validate": "debias.fit.config",
    "FitInterrupted": "debias.fit.errors",
    "resume_fit": "debias.fit.resume",
    "run_fit": "debias.fit.run",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'debias.fit' has no attribute {name!r}")
