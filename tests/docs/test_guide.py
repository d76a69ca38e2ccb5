"""Every example of the guide to writing a datamodule (docs/datamodules.md) runs as written (a new user copies them).

The guide's fenced blocks are read from its page: a python or yaml block whose first line is `# name.py: ...` is
that file, a toml block is the plugin package's pyproject.toml, and each bash block is one example, run line by
line in a fresh folder that stands for the effnet project (its parent holds `my_package/`):
- `uv run python X ...` runs X in this process; `[PYTHONPATH=.] uv run effnet ...` calls `cli.main` (PYTHONPATH=.
  puts the folder on sys.path);
- `cp F datamodules/` drops F into a folder added to the `effnet_lightning.datamodules` package path (the
  project's own folder stays untouched);
- `uv pip install -e ../my_package` writes the installed metadata (entry_points.txt from the toml block) that an
  install makes and puts the package on sys.path; `uv sync --inexact` then has nothing to remove. The real uv
  commands were run by hand (uv 0.13.9) with the results the guide shows.
A line the test does not know fails the test with the line, so a changed guide is caught, not skipped.
"""

from __future__ import annotations

import re
import runpy
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from effnet_run import effnet, scalars
from learning import learning_seed

import effnet_lightning.datamodules as datamodules_package
from effnet_lightning.train.checkpoint_format import load_checkpoint

GUIDE = Path(__file__).parents[2] / "docs" / "datamodules.md"
BLOCK = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.S | re.M)  # fenced block, possibly indented in a list
FILE_LINE = re.compile(r"# (\S+\.(?:py|yaml)):")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


def guide_blocks() -> list[Block]:
    return [Block(lang, textwrap.dedent(text)) for _, lang, text in BLOCK.findall(GUIDE.read_text())]


def guide_files() -> dict[str, str]:
    """name -> content of the python/yaml blocks that name their file on the first line."""
    files = {}
    for block in guide_blocks():
        if block.lang in ("python", "yaml") and (match := FILE_LINE.match(block.text)):
            files[match.group(1)] = block.text
    return files


def bash_examples() -> list[str]:
    """The bash blocks, the one that trains by dotted path last: a class stays alive in this process after its
    example (gc does not free it), and `--data=NpzImages` would then be ambiguous as it never is in separate runs."""
    return sorted((block.text for block in guide_blocks() if block.lang == "bash"), key=lambda t: "npz_try" in t)


def example_id(text: str) -> str:
    """A readable test id: what the example shows."""
    for marker, name in (("npz_try.yaml", "try-it"), ("datamodules/", "datamodules-folder"), ("uv pip", "entry-point")):
        if marker in text:
            return name
    return shlex.split(text.splitlines()[0], comments=True)[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder standing for the effnet project, holding the guide's files; cwd; plugin modules forgotten after."""
    folder = tmp_path / "effnet-lightning"
    folder.mkdir()
    for name, text in guide_files().items():
        (folder / name).write_text(text)
    monkeypatch.chdir(folder)
    yield folder
    for name in [n for n in sys.modules if n.split(".")[0] in ("my_data", "make_npz", "my_package")]:
        del sys.modules[name]
    sys.modules.pop(f"{datamodules_package.__name__}.my_data", None)


def run_line(
    line: str, project: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, seed: int | None = None
) -> str:
    """Run one line of a bash example; return what `effnet` printed (stdout and stderr). A seed replaces the
    config's `seed_everything` in `effnet fit` (the guide's own is 0, the default seed of learning tests)."""
    words = shlex.split(line, comments=True)
    env = {}
    while words and re.fullmatch(r"\w+=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if env.pop("PYTHONPATH", ".") != ".":
        pytest.fail(f"guide: only PYTHONPATH=. is understood in {line!r}")
    if env:
        pytest.fail(f"guide: unknown environment {env} in {line!r}")
    if words[:3] == ["uv", "run", "effnet"]:
        monkeypatch.syspath_prepend(str(project))  # PYTHONPATH=. (harmless without it: the dotted path needs it)
        seeded = [f"--seed_everything={seed}"] if seed is not None and words[3] == "fit" else []
        done = effnet(capfd, *words[3:], *seeded)
        assert done.returncode == 0, f"{line!r} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr
    if words[:3] == ["uv", "run", "python"]:
        with monkeypatch.context() as scoped:  # LightningCLI would read a leftover sys.argv
            scoped.setattr(sys, "argv", words[3:])
            runpy.run_path(words[3], run_name="__main__")
        return ""
    if words[0] == "cp" and words[2] == "datamodules/":
        dropped = project.parent / "dropped_datamodules"
        dropped.mkdir(exist_ok=True)
        (dropped / words[1]).write_text((project / words[1]).read_text())
        monkeypatch.setattr(datamodules_package, "__path__", [*datamodules_package.__path__, str(dropped)])
        return ""
    if words[:4] == ["uv", "pip", "install", "-e"]:
        install_editable(project / words[4], project.parent / "site", monkeypatch)
        return ""
    if words == ["uv", "sync", "--inexact"]:
        return ""  # keeps what was installed: nothing to do here
    pytest.fail(f"guide: the test does not know how to run {line!r}; teach tests/docs/test_guide.py")


def install_editable(package: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an editable install leaves: the package's folder on sys.path and its dist-info with entry points."""
    meta = read_pyproject(package / "pyproject.toml")
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text(meta["entry_points"])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(package))


def read_pyproject(path: Path) -> dict[str, str]:
    """name, version and the entry points (entry_points.txt's format) of the guide's pyproject.toml: the few
    lines of TOML it uses (tomllib is Python 3.11+, the project supports 3.10)."""
    meta = {"entry_points": ""}
    for line in path.read_text().splitlines():
        if group := re.fullmatch(r'\[project\.entry-points\."([^"]+)"\]', line.strip()):
            meta["entry_points"] += f"[{group.group(1)}]\n"
        elif pair := re.fullmatch(r'([\w.-]+)\s*=\s*"([^"]*)"', line.strip()):
            key, value = pair.groups()
            if meta["entry_points"]:
                meta["entry_points"] += f"{key} = {value}\n"
            else:
                meta[key] = value
    return meta


def write_package(project: Path) -> None:
    """../my_package as the guide describes it: pyproject.toml (the toml block), my_package/my_data.py."""
    (toml,) = [block.text for block in guide_blocks() if block.lang == "toml"]
    package = project.parent / "my_package"
    (package / "my_package").mkdir(parents=True)
    (package / "pyproject.toml").write_text(toml)
    (package / "my_package" / "__init__.py").write_text("")
    (package / "my_package" / "my_data.py").write_text(guide_files()["my_data.py"])


def test_the_guide_has_its_files_and_examples() -> None:
    assert set(guide_files()) == {"my_data.py", "make_npz.py", "npz_try.yaml"}
    assert len(bash_examples()) == 3


def examples() -> list:
    """The bash examples as test parameters; the one that trains asserts that it learnt: a learning test."""
    return [
        pytest.param(text, id=example_id(text), marks=[pytest.mark.learning] if "npz_try.yaml" in text else [])
        for text in bash_examples()
    ]


@pytest.mark.parametrize("example", examples())
def test_guide_example_runs_as_written(example, project, monkeypatch, capfd, record_property) -> None:
    if not (project / "data" / "npz").exists() and "make_npz.py" not in example:
        run_line("uv run python make_npz.py data/npz", project, monkeypatch, capfd)  # the data of the first example
    if "../my_package" in example:
        write_package(project)
    lines = example.replace("\\\n", " ").splitlines()  # a backslash-newline continues the line
    seed = learning_seed() if "npz_try.yaml" in example else None
    printed = [run_line(line, project, monkeypatch, capfd, seed) for line in lines if line.strip()]
    joined = "\n".join(printed)
    if "npz_try.yaml" in example:
        run = project / "runs" / "npz" / "version_0"
        checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
        # the plugin's default_mean/std (class attributes) reach the checkpoint that export and cam read
        assert checkpoint["data_config"]["mean"] == pytest.approx([0.5, 0.5, 0.5])
        assert checkpoint["data_config"]["std"] == pytest.approx([0.25, 0.25, 0.25])
        assert checkpoint["data_config"]["input_size"] == [3, 32, 32]
        top1 = scalars(run / "eval" / "version_0")["test/acc1"][-1]
        record_property("test/acc1", top1)
        assert top1 >= 0.75  # a learnt toy: 0.97 measured
        assert "has no test split" not in joined  # the plugin has test.npz
        assert (run / "eval" / "version_1" / "predictions.csv").is_file()  # the path the guide names
    if "cp my_data.py datamodules/" in example:
        assert f"{datamodules_package.__name__}.my_data" in sys.modules  # found in datamodules/ by its short name
        assert not list(project.glob("runs/**/*.ckpt"))  # fast_dev_run: one batch, no checkpoint
    if "../my_package" in example:
        listed = r"NpzImages\s+.+\n\s+\[entry point npz_images \(my-package\): my_package\.my_data\.NpzImages\]"
        assert re.search(listed, joined), joined
