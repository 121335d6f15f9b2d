"""Datasets: a registry from `--data` values to loaders that return a `Dataset`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from debias.data.base import SPLITS, Dataset, ImageSplit
from debias.data.options import OPTION_FLAGS, check_options
from debias.errors import UserError


class _Loader(NamedTuple):
    load: Callable[..., Dataset]
    description: str
    not_taken: Mapping[str, str]  # option -> why it does not apply (see options.check_options)


_REGISTRY: dict[str, _Loader] = {}


def register(name: str, description: str, not_taken: Mapping[str, str] | None = None):
    """Decorator: make `loader` available as `--data name`.

    The loader's keyword parameters are the options it takes (no **kwargs); `not_taken` says why
    an option other datasets take does not apply to this one (option -> reason).
    """

    def wrap(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = _Loader(loader, description, dict(not_taken or {}))
        return loader

    return wrap


def available() -> dict[str, str]:
    """Registered dataset names and their one-line descriptions."""
    _import_builtin()
    return {name: entry.description for name, entry in _REGISTRY.items()}


def load_dataset(name: str, **options) -> Dataset:
    """Load the dataset registered as `name`, or the manifest CSV / class-folder tree at path `name`.

    Registered names win over paths; options are the loader's keyword options. An option the
    loader does not take raises UserError before anything is read (debias.data.options).
    """
    _import_builtin()
    if name in _REGISTRY:
        entry = _REGISTRY[name]
        check_options(options, entry.load, f"the {name} dataset", entry.not_taken)
        return entry.load(**options)
    from debias.data import manifest

    path = Path(name).expanduser()
    if name.lower().endswith(".csv") or path.is_file():
        check_options(
            options, manifest.load_manifest, f"a CSV manifest ({name})", manifest.MANIFEST_NOT_TAKEN, ("path",)
        )
        return manifest.load_manifest(path, **options)
    if path.is_dir():
        check_options(
            options,
            manifest.load_image_folder,
            f"a class-folder dataset ({name})",
            manifest.FOLDER_NOT_TAKEN,
            ("path",),
        )
        return manifest.load_image_folder(path, **options)
    raise UserError(
        f"unknown dataset {name!r}: not one of {', '.join(sorted(_REGISTRY))}, nor an existing CSV manifest "
        "or image folder. Run `debias datasets` to see the choices."
    )


def _import_builtin() -> None:
    # Imported lazily so that `import debias.data` stays cheap and free of cycles.
    from debias.data import (
        celeba,  # noqa: F401
        synthfaces,  # noqa: F401
    )


__all__ = ["OPTION_FLAGS", "SPLITS", "Dataset", "ImageSplit", "available", "load_dataset", "register"]
