"""The documentation builds, and no document points at something the repository lacks.

`mkdocs build --strict` turns a broken link or anchor between pages, a page missing from the nav, and an API
reference entry that names no object into a failure (mkdocs.yml sets each to a warning). README.md,
CONTRIBUTING.md and BENCHMARKS.md are not pages of the site: their links and the repository paths every document
names are checked here.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_files import ROOT, documents, relative

TOP_LEVEL = ("effnet_lightning", "datamodules", "callbacks", "configs", "tests", "benchmarks", "docs", "docker", ".ci")
# a repository path: one of the top-level folders and what follows, not part of a longer path (/app/data, ../x)
REPO_PATH = re.compile(rf"(?<![\w./~-])(?:{'|'.join(re.escape(t) for t in TOP_LEVEL)})/[\w./-]*")
TOP_FILES = re.compile(r"(?<![\w./-])(?:README|CONTRIBUTING|BENCHMARKS|CHANGELOG)\.md|(?<![\w./-])mkdocs\.yml")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w./-])effnet_lightning(?:\.\w+)+")
NOT_OBJECTS = {  # dotted names the documents use that are not importable objects, and what they are
    "effnet_lightning.output": "the logger a command's result goes to",
    "effnet_lightning.datamodules.my_data.NpzImages": "the guide's datamodule, dropped into datamodules/",
    "effnet_lightning.callbacks.NAME": "a placeholder for a new callback",
}


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """The command a contributor runs (`uv run --group docs mkdocs build --strict`), in this environment."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "drop_path_rate" in api and "memory_budget_gb" in api  # the constructors' Args: are shown


def named_paths(path: Path) -> list[str]:
    text = path.read_text()
    found = [m.rstrip(".").split("::")[0] for m in REPO_PATH.findall(text)]
    return found + TOP_FILES.findall(text)


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_repository_path_a_document_names_exists(document: Path) -> None:
    missing = sorted({p for p in named_paths(document) if not (ROOT / p).exists()})
    assert not missing, f"{relative(document)} names paths the repository lacks: {missing}"


@pytest.mark.parametrize("document", [p for p in documents() if p.parent == ROOT], ids=relative)
def test_links_of_the_top_level_documents_resolve(document: Path) -> None:
    """Relative links of README.md, CONTRIBUTING.md and BENCHMARKS.md point at files that exist."""
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"\w+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same file
        if not (document.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{relative(document)}: broken links {broken}"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12_000
    assert "uv run pytest" in readme  # what .ci/run runs
    assert "uv run effnet fit --config configs/b1_cifar.yaml" in readme


def resolves(dotted: str) -> bool:
    """Whether `dotted` is a module of the package or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_dotted_name_a_document_gives_imports(document: Path) -> None:
    """`effnet_lightning.x.y` in a document is a class path a reader types into a config or an import."""
    names = set(DOTTED.findall(document.read_text())) - set(NOT_OBJECTS)
    missing = sorted(name for name in names if not resolves(name))
    assert not missing, f"{relative(document)} names what does not import: {missing}"
