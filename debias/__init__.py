"""debias: find what a face dataset under-represents and turn it into resampling weights.

The public API (see the README's "Python API"); `import debias` stays light, and torch loads on
first use of a name that needs it:

    debias.run(**settings) -> FitResult            a fit, as `debias fit` (debias.result)
    debias.resume(run_dir) / debias.load_run(run_dir) -> FitResult
    debias.weights_from_features(features, labels, strategy="joint", **settings)   mean-1 weights for any [N, D]
    debias.weights_from_errors(probabilities, labels, upweight=20)                 JTT weights from your classifier
    debias.available_strategies()                   every weighting strategy, described
    debias.FitConfig, debias.WeightingSettings      the settings, declared once
    debias.SampleWeights, debias.write_weights      weights files for your pipeline
    debias.UserError                                what every refusal raises: one message, what to do
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first access (PEP 562).
_EXPORTS = {
    "run": "debias.result",
    "resume": "debias.result",
    "load_run": "debias.result",
    "FitResult": "debias.result",
    "weights_from_features": "debias.features",
    "weights_from_errors": "debias.features",
    "available_strategies": "debias.features",
    "FitConfig": "debias.fit.config",
    "WeightingSettings": "debias.weighting.settings",
    "SampleWeights": "debias.weight_files",
    "write_weights": "debias.weight_files",
    "UserError": "debias.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'debias' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
