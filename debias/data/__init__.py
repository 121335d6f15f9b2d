"""Datasets: a registry from `--data` values to loaders that return a `Dataset`."""

from __future__ import annotations

from pathlib import Path
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
    """Load the dataset registered as `name`, or the manifest CSV / class-folder tree at path `name`.

    Registered names win over paths; options are the loader's keyword options.
    """
    _import_builtin()
    if name in _REGISTRY:
        loader, _ = _REGISTRY[name]
        return loader(**options)
    from debias.data.manifest import load_image_folder, load_manifest

    path = Path(name).expanduser()
    if name.lower().endswith(".csv") or path.is_file():
        return load_manifest(path, **options)
    if path.is_dir():
        return load_image_folder(path, **options)
    raise UserError(
        f"unknown dataset {name!r}: not one of {', '.join(sorted(_REGISTRY))}, nor an existing CSV manifest "
        "or image folder. Run `debias datasets` to see the choices."
    )


def _import_builtin() -> None:
    # Imported lazily so that `import debias.data` stays cheap and free of cycles.
    from debias.data import synthfaces  # noqa: F401
    from debias.data import celeba  # noqa: F401


__all__ = ["SPLITS", "Dataset", "ImageSplit", "available", "load_dataset", "register"]
