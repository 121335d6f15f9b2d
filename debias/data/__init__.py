"""Datasets: a registry from `--data` values to loaders that return a `Dataset`."""

from __future__ import annotations

from typing import Callable

from debias.data.base import SPLITS, Dataset, ImageSplit
from debias.errors import UserError

# name -> (loader, one-line description). Loaders take keyword options and return a Dataset.
_REGISTRY: dict[str, tuple[Callable[..., Dataset], str]] = {}


def register(name: str, description: str):
    """Decorator: make `loader` available as `--data name`."""

    def wrap(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = (loader, description)
        return loader

    return wrap


def available() -> dict[str, str]:
    """Registered dataset names and their one-line descriptions."""
    _import_builtin()
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def load_dataset(name: str, **options) -> Dataset:
    """Load the dataset registered as `name` with loader-specific keyword options."""
    _import_builtin()
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    loader, _ = _REGISTRY[name]
    return loader(**options)


def _import_builtin() -> None:
    # Imported lazily so that `import debias.data` stays cheap and free of cycles.
    from debias.data import synthfaces  # noqa: F401


__all__ = ["SPLITS", "Dataset", "ImageSplit", "available", "load_dataset", "register"]
