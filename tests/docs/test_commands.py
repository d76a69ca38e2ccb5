"""Every `effnet` command the documents show is one that works: run where it runs offline on a CPU in seconds,
else parsed and config-checked by the command's own parser; one that needs a GPU, a download or ImageNet says so.

Commands are read from README.md, CONTRIBUTING.md, BENCHMARKS.md and docs/: the lines of fenced blocks (in a block
with `$ ` prompts only those lines; a backslash-newline continues a line) and inline code spans that start with
the command. A span with a placeholder (`...`, `|`, `[`, `<`, a capitalised word such as `KIND` or `A.ckpt`) is a
synopsis, and a span of one word after `effnet` names a command (`effnet export`): neither is run. The guide's
bash blocks (docs/datamodules.md) are run line by line by tests/docs/test_guide.py and are left to it.

How each is checked, in process (`cli.main`):
- `fit`, `validate`, `test`, `predict`: the whole command line with `--print_config` (LightningCLI parses the
  config files and every override, and resolves the classes they name), exit 0;
- `scale`, `datamodules`, `--help`: run, exit 0;
- `study`: its parser, the plan it would train (`make_plan`), and its fit overrides through fit's parser;
- `benchmark`: its parser; `export` and `cam`: parsed up to the checkpoint (or, for `cam --split`, the data)
  that the document's run would have written (the one-line error then names it, not an argument).
A console block's command whose next line is an `error:` line must fail with exit 2, as shown.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_files import ROOT, blocks, documents, inline_spans, paragraphs, relative
from effnet_run import effnet

import effnet_lightning.datamodules as datamodules_package
from effnet_lightning.study import main as study_main
from effnet_lightning.tools import benchmark

GUIDE = ROOT / "docs" / "datamodules.md"
GUIDE_FILES = re.compile(r"# (\S+\.(?:py|yaml)):")  # the guide's file blocks start with `# name.py: ...`
TRAINING = ("fit", "validate", "test", "predict")
GPU_CONFIGS = {
    "b0_cifar",
    "b1_cifar",
    "b3_cifar",
    "b0_imagenet",
    "b3_imagenet",
    "b7_imagenet",
    "family_cifar",
    "table7_cifar",
    "b0_cifar_transfer",
}  # precision auto/bf16 at 224-600 px: meant for a GPU
CIFAR_CONFIGS = {
    "cifar_debug",
    "b0_cifar",
    "b1_cifar",
    "b3_cifar",
    "family_cifar",
    "table7_cifar",
    "b0_cifar_transfer",
}  # download: true
IMAGENET_CONFIGS = {"b0_imagenet", "b3_imagenet", "b7_imagenet"}
SYNOPSIS = re.compile(r"\.\.\.|\||\[|<|(?<![\w.=-])[A-Z][A-Z_]*(?![\w])|\b[A-Z]\.ckpt")
SHELL_VARIABLE = re.compile(r"\$\{?(\w+)(\[@\])?\}?")


@dataclass(frozen=True)
class Command:
    """One documented command: `effnet`'s arguments, where it is shown, what is said beside it."""

    words: tuple[str, ...]
    where: str
    context: str  # the block (its comments) and the paragraph before it, or the span's paragraph
    fails: bool  # shown failing (an `error:` line follows it)

    def __str__(self) -> str:
        return f"{self.where}: effnet {shlex.join(self.words)}"


def effnet_words(line: str) -> tuple[str, ...] | None:
    """The arguments of the `effnet` command on a shell line (after `uv run`, `srun`, env settings, torchrun's
    --no-python, or a `docker run ... effnet-lightning` image), or None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    starts = [
        i + 1
        for i, word in enumerate(words)
        if word == "effnet"
        and (i == 0 or words[i - 1] in ("run", "--no-python", "srun") or all("=" in w for w in words[:i]))
    ]
    if not starts and "effnet-lightning" in words and words[0] == "docker" and "build" not in words:
        starts = [words.index("effnet-lightning") + 1]  # the image's entrypoint is effnet
    if not starts:
        return None
    rest = words[starts[0] :]
    if rest and rest[0].endswith(":"):  # `effnet fit: error: ...`: output, not a command
        return None
    return tuple(substitute(w) for w in rest if not w.startswith((">", "2>")) and "[@]" not in w)


def substitute(word: str) -> str:
    """Shell variables of the documents' scripts: a value of the right kind."""
    return SHELL_VARIABLE.sub(lambda m: "runs/slurm-1" if m.group(1) == "root" else "1", word)


def block_commands(path: Path) -> list[Command]:
    text = path.read_text()
    found = []
    for block in blocks(path):
        if block.lang not in ("bash", "sh", "console", ""):
            continue
        if path == GUIDE and block.lang == "bash":
            continue  # tests/docs/test_guide.py runs these line by line
        lines = block.text.replace("\\\n", " ").splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        before = text[max(0, text.find(block.text) - 600) : text.find(block.text)]
        for i, line in enumerate(lines):
            if prompted and not line.startswith("$ "):
                continue
            words = effnet_words(line.removeprefix("$ "))
            if words is None:
                continue
            fails = prompted and i + 1 < len(lines) and " error: " in lines[i + 1]
            found.append(Command(words, relative(path), block.text + "\n" + before, fails))
    return found


def inline_commands(path: Path) -> list[Command]:
    found = []
    for paragraph in paragraphs(path):
        for span in inline_spans(paragraph):
            command = re.sub(r"^(\w+=\S+ )*(uv run )?", "", span)
            if not command.startswith("effnet ") or SYNOPSIS.search(command) or " " not in command[len("effnet ") :]:
                continue  # not a command, a synopsis, or a command's name (`effnet export`)
            words = effnet_words(command)
            if words is not None:
                found.append(Command(words, relative(path), paragraph, fails=False))
    return found


def documented() -> list[Command]:
    commands = []
    for path in documents():
        commands += block_commands(path) + inline_commands(path)
    return list(dict.fromkeys(commands))


COMMANDS = documented()
DISTINCT = list({(c.words, c.fails): c for c in reversed(COMMANDS)}.values())[::-1]  # each command line once


def config_name(words: tuple[str, ...]) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word == "--config":
            return Path(words[i + 1]).stem
    return None


def needs(command: Command) -> set[str]:
    """What the command needs beyond a CPU and the repository, as the words beside it must say it."""
    words, config = command.words, config_name(command.words)
    needed = set()
    if config in GPU_CONFIGS or "cuda" in words or "--gpus" in words or any("sync_batchnorm" in w for w in words):
        needed.add("GPU")
    if config in CIFAR_CONFIGS and "--print_config" not in words:
        needed.add("download|CIFAR-10")
    if config in IMAGENET_CONFIGS:
        needed.add("ImageNet")
    return needed


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder as a reader's: the repository's configs, a grid study's coefficients.yaml, the guide's
    datamodule dropped into datamodules/ (its `--data.help NpzImages`)."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "runs" / "study-grid").mkdir(parents=True)
    (tmp_path / "runs" / "study-grid" / "coefficients.yaml").write_text("alpha: 1.2\nbeta: 1.1\ngamma: 1.15\n")
    (tmp_path / "runs" / "version_3").mkdir()  # a run's config.yaml is a fit config
    (tmp_path / "runs" / "version_3" / "config.yaml").write_text((ROOT / "configs" / "cifar_debug.yaml").read_text())
    dropped = tmp_path / "dropped"
    dropped.mkdir()
    guide_files = {}
    for block in blocks(GUIDE):
        if match := GUIDE_FILES.match(block.text):
            guide_files[match.group(1)] = block.text
    (dropped / "my_data.py").write_text(guide_files["my_data.py"])
    monkeypatch.setattr(datamodules_package, "__path__", [*datamodules_package.__path__, str(dropped)])
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop(f"{datamodules_package.__name__}.my_data", None)


def test_the_documents_show_commands_of_every_kind() -> None:
    shown = {c.words[0] if c.words else "" for c in COMMANDS}
    assert {"fit", "scale", "study", "export", "benchmark", "datamodules"} <= shown, shown
    assert len(COMMANDS) >= 40, [str(c) for c in COMMANDS]


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_what_a_command_needs_is_said_beside_it(command: Command) -> None:
    for need in needs(command):
        assert re.search(need, command.context), f"{command}: say beside it that it needs {need.split('|')[0]}"


@pytest.mark.parametrize("command", DISTINCT, ids=str)
def test_documented_command_works(command: Command, folder: Path, capfd: pytest.CaptureFixture) -> None:
    words = list(command.words)
    name = words[0] if words else "--help"
    if command.fails:
        done = effnet(capfd, *words)
        assert done.returncode == 2, f"{command}: shown failing in one line, exited {done.returncode}"
        assert " error: " in done.stderr
    elif name in TRAINING:
        shown = "--print_config" in words or any(w.endswith(".help") or w in ("-h", "--help") for w in words)
        args = words if shown else [*words, "--print_config"]
        done = effnet(capfd, *args)
        assert done.returncode == 0, f"{command}: exited {done.returncode}\n{done.stderr[-2000:]}"
    elif name in ("scale", "datamodules", "--help", "-h") or words[1:2] == ["--help"]:
        done = effnet(capfd, *words)
        assert done.returncode == 0, f"{command}: exited {done.returncode}\n{done.stderr[-2000:]}"
    elif name == "study":
        check_study(command, words[1:], capfd)
    elif name == "benchmark":
        try:
            benchmark.build_parser().parse_args(words[1:])
        except SystemExit as stop:
            pytest.fail(f"{command}: effnet benchmark's parser refused it ({stop})")
    elif name in ("export", "cam"):
        done = effnet(capfd, *words)
        missing = ("does not exist", "No train/ folder")  # the run's checkpoint, or (cam --split) its data
        assert done.returncode == 2 and any(m in done.stderr for m in missing), (
            f"{command}: expected to stop at the checkpoint or data the document's run has, got exit "
            f"{done.returncode}\n{done.stderr[-2000:]}"
        )
    else:
        pytest.fail(f"{command}: the test does not know how to check `effnet {name}`; teach it")


def check_study(command: Command, argv: list[str], capfd: pytest.CaptureFixture) -> None:
    """The study's own parser and plan, then its fit overrides through fit's parser (no data is read)."""
    args, overrides = study_main.build_parser().parse_known_args(argv)
    study_main._check_overrides(overrides)
    base = study_main._base_scaling(study_main._load_config(Path(args.config)))
    plan = study_main.make_plan(args, base)
    assert plan.arms, f"{command}: plans no arm"
    done = effnet(capfd, "fit", "--config", args.config, *overrides, "--print_config")
    assert done.returncode == 0, f"{command}: fit refused its overrides\n{done.stderr[-2000:]}"


def test_the_readme_python_runs(capsys: pytest.CaptureFixture) -> None:
    """The README's lines of Python, as written: a B0, a φ = 1.5 network's forward pass, a width-only solution."""
    (code,) = [block.text for block in blocks(ROOT / "README.md") if block.lang == "python"]
    assert len(code.strip().splitlines()) <= 10
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["logits"].shape) == (1, 10)
    assert scope["spec"].resolution == 276  # 224 * 1.15**1.5 = 276.2, on the 4 px grid
    assert abs(scope["width_only"].deviation) < 0.05
    assert "torch.Size([1, 10])" in capsys.readouterr().out
