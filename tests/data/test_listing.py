"""`debias datasets` text: every registered name, and how to point at a CSV or a folder."""

from debias.data import available
from debias.data.listing import describe_datasets


def test_lists_every_registered_dataset_with_an_example(private_cache):
    text = describe_datasets()
    for name, description in available().items():
        assert f"  {name}\n" in text and description in text
    assert "debias fit --data celeba --root" in text
    assert "PATH.csv" in text and "path" in text and "label" in text and "split" in text
    assert "DIR" in text and "ImageFolder" in text
    assert str(private_cache) in text  # where the cache lives, from $DEBIAS_CACHE
