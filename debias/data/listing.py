"""The text `debias datasets` prints: what can be passed to --data and how."""

from __future__ import annotations

from debias.data import available
from debias.data.cache import resolve_cache_dir

# Example command lines for registered names; a name not listed here gets a plain `--data NAME`.
EXAMPLES = {
    "celeba": "debias fit --data celeba --root ~/data/celeba --target Blond_Hair --groups Male",
    "synthfaces": "debias fit --data synthfaces   (a rare combination: --data-option spurious=hat, target glasses)",
}


def describe_datasets() -> str:
    """Every registered dataset with its description and an example, then the manifest and folder forms."""
    lines = ["Datasets (--data NAME):", ""]
    for name, description in sorted(available().items()):
        lines += [
            f"  {name}",
            f"      {description}",
            f"      e.g. {EXAMPLES.get(name, f'debias fit --data {name}')}",
            "",
        ]
    lines += [
        "  PATH.csv   a manifest of your own images",
        "      columns: path (relative to the CSV's folder, or absolute), label (0/1 or two names),",
        "      optional split (train/valid/test; otherwise a seeded 70/15/15 split by label),",
        "      any other columns can be evaluation groups",
        "      e.g. debias fit --data images/manifest.csv --groups skin_tone",
        "",
        "  DIR        a folder with exactly two class subfolders, as torchvision's ImageFolder reads",
        "      (labels 0/1 by sorted folder name; seeded 70/15/15 split)",
        "      e.g. debias fit --data ~/data/faces_vs_other",
        "",
        f"Decoded images are cached in {resolve_cache_dir()} (--cache-dir or $DEBIAS_CACHE to move it).",
        "Where to get CelebA and how to lay it out: data/README.md",
    ]
    return "\n".join(lines)
