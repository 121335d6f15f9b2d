"""Every package that debias/ or pipelines/ imports is declared in pyproject.toml."""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def imported_top_level(folder: Path) -> set[str]:
    """The top-level names of every absolute import in the .py files under `folder`."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {_normalized(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requirements}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    third_party = (
        (imported_top_level(ROOT / "debias") | imported_top_level(ROOT / "pipelines"))
        - set(sys.stdlib_module_names)
        - {"debias", "__future__"}
    )
    # An import name -> its distribution (sklearn -> scikit-learn); a package not installed here by its own name.
    known = importlib.metadata.packages_distributions()
    missing = sorted(
        name for name in third_party if not {_normalized(d) for d in known.get(name, [name])} & declared_distributions()
    )
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    assert {"scipy", "markupsafe", "fairlearn", "torch"} <= third_party  # the scan sees the imports


def test_nothing_in_the_repository_points_outside_it():
    """A user's clone has no ../shared: code, docs and benchmarks name their inputs as arguments."""
    places = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "BENCHMARKS-history.md", ROOT / "data" / "README.md"]
    for folder in ("debias", "docs", "pipelines", "benchmarks"):
        places += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".j2")]
    pointing = [str(p.relative_to(ROOT)) for p in places if re.search(r"\.\./shared|/shared/", p.read_text("utf-8"))]
    assert not pointing, f"these files point outside the repository: {pointing}"
