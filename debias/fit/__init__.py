"""`debias fit`: settings -> dataset -> trained models -> run folder (see debias.run_dir for its files).

The rooms, each one job:

    config.py      FitConfig (every setting, declared once) and validate()
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
"""

from debias.fit.config import FitConfig, validate
from debias.fit.draws import MODELS
from debias.fit.errors import FitInterrupted
from debias.fit.resume import resume_fit
from debias.fit.run import run_fit

__all__ = ["MODELS", "FitConfig", "FitInterrupted", "resume_fit", "run_fit", "validate"]
