"""Fixtures shared across the test folders."""

import json

import pytest

import debias.fit


@pytest.fixture(scope="module")
def reuse_datasets():
    """Fits in the using module share one generated dataset per set of loader options.

    Saves regenerating synthfaces for every fit, and resumed fits must see the same data anyway.
    Use with `pytestmark = pytest.mark.usefixtures("reuse_datasets")`.
    """
    cache = {}
    real = debias.fit.load_dataset

    def cached(name, **options):
        key = (name, json.dumps(options, sort_keys=True, default=str))
        if key not in cache:
            cache[key] = real(name, **options)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(debias.fit, "load_dataset", cached)
        yield
