"""Fixtures for the dataset tests: fake datasets in the real formats and a private cache directory."""

import pytest
from fakes import make_fake_celeba, make_image_folder, make_manifest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory through $DEBIAS_CACHE, so none touches ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEBIAS_CACHE", str(cache))
    return cache


@pytest.fixture
def fake_celeba(tmp_path):
    """A 30-image fake CelebA (CRLF text files, real JPEGs) in tmp_path/celeba-root; returns that folder."""
    return make_fake_celeba(tmp_path / "celeba-root", n=30)


@pytest.fixture
def manifest(tmp_path):
    """A 40-image manifest with a split column, string labels cat/dog and group columns tone, age."""
    return make_manifest(tmp_path / "manifest-root", n=40)


@pytest.fixture
def image_folder(tmp_path):
    """A two-class ImageFolder tree (no_face/, face/) with 20 images each."""
    return make_image_folder(tmp_path / "folder-root")
