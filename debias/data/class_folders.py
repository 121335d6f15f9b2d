"""The images of class subfolders, as torchvision's ImageFolder lists them, minus what is not an image (counted).

A folder of real photos collects strays: macOS `._x.jpg` AppleDouble files copied from a Mac
volume, a text file named `.jpg`, `.DS_Store`, a broken or looping symbolic link. Each is
skipped and counted by reason, never silently and never fatally; a file that looks like an image
but is damaged is kept, so decoding it names it. Files are listed in torchvision's order
(folders sorted by path, files by name), and a linked folder already listed (a link back to a
parent, or to another class) is not walked again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from debias.data.images import looks_like_image

# torchvision's list, plus the JPEG spelling some cameras use and GIF (decoded as its first frame).
IMAGE_EXTENSIONS = tuple(sorted({*IMG_EXTENSIONS, ".jfif", ".jpe", ".gif"}))
EXAMPLES_KEPT = 5

APPLEDOUBLE = "macOS AppleDouble file (._*)"
OTHER_EXTENSION = "not an image extension"
NOT_AN_IMAGE = "not an image inside"
BAD_LINK = "broken or looping symbolic link"
LINKED_FOLDER = "linked folder listed already"


@dataclass
class SkippedFiles:
    """What a listing left out: a count per reason and the first few paths (relative to the root)."""

    by_reason: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many entries were skipped in all."""
        return sum(self.by_reason.values())

    def add(self, reason: str, relative: str) -> None:
        """Count one skipped entry."""
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{relative} ({reason})")

    def to_dict(self) -> dict:
        """For the dataset's info (and so config.json)."""
        return {"count": self.count, "by_reason": dict(self.by_reason), "examples": list(self.examples)}

    def sentence(self, root: Path) -> str:
        """'skipped 3 files under DIR that are not images: 1 macOS AppleDouble file (._*), ... (e.g. ...)'."""
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.by_reason.items()))
        return f"skipped {self.count} entries under {root} that are not images: {reasons} (e.g. {self.examples[0]})"


def list_class_folders(root: Path, classes: list[str]) -> tuple[list[tuple[Path, int]], SkippedFiles]:
    """(path, class index) of every image under root/<class>/ for each of `classes`, and what was skipped."""
    samples: list[tuple[Path, int]] = []
    skipped = SkippedFiles()
    # Shared by all classes and seeded with the root and every class folder: a link to one of them
    # would list the images again, and under the wrong class.
    seen = {_identity(root), *(_identity(root / name) for name in classes)}
    for label, name in enumerate(classes):
        for folder, filenames in _walk_once(root / name, root, seen, skipped):
            for filename in sorted(filenames):
                path = Path(folder) / filename
                reason = _why_not_an_image(path, filename)
                if reason is None:
                    samples.append((path, label))
                else:
                    skipped.add(reason, path.relative_to(root).as_posix())
    return samples, skipped


def _walk_once(top: Path, root: Path, seen: set, skipped: SkippedFiles) -> list[tuple[str, list[str]]]:
    """(folder, file names) under `top`, following links but entering no real folder in `seen` (which it
    extends), sorted by folder."""
    found = []
    for folder, dirnames, filenames in os.walk(top, followlinks=True):
        for dirname in list(dirnames):
            identity = _identity(Path(folder) / dirname)
            if identity is None:
                continue  # unreadable: os.walk skips it
            if identity in seen:
                dirnames.remove(dirname)  # a link back to a folder already walked: walking it again would loop
                skipped.add(LINKED_FOLDER, (Path(folder) / dirname).relative_to(root).as_posix())
            else:
                seen.add(identity)
        found.append((folder, filenames))
    return sorted(found)  # torchvision's order: sorted(os.walk(...))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _why_not_an_image(path: Path, filename: str) -> str | None:
    if filename.startswith("._"):
        return APPLEDOUBLE
    if not filename.lower().endswith(IMAGE_EXTENSIONS):
        return OTHER_EXTENSION
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(32)
    except OSError:
        # exists() follows links: False for a dangling or looping one. Anything else unreadable
        # is kept, so that decoding it names it and says why.
        return None if path.exists() else BAD_LINK
    return None if looks_like_image(prefix, path) else NOT_AN_IMAGE
