"""The package's tiers import one way: errors <- model <- datamodules <- drawing <- train (the runtime) <-
callbacks <- assembly <- {study, tools} <- cli; export and cam read checkpoints without Lightning; nothing under
benchmarks/ imports from tests/.

Two views of the layer rule: every `import` statement in the source, function-level ones included (read with
`ast`), and what a fresh Python has in `sys.modules` after importing each layer's modules, lowest layer first.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = "effnet_lightning"
# (folder in the repository, the package it installs as): pyproject.toml's package-dir mapping
SOURCES = ((ROOT / "effnet_lightning", PACKAGE), (ROOT / "callbacks", f"{PACKAGE}.callbacks"))
SOURCES += ((ROOT / "datamodules", f"{PACKAGE}.datamodules"),)
LAYERS = (  # lowest first; a module may import its own tier and those below
    ("errors", "console"),
    ("model", "scaling"),  # scaling: the old import path of model.scaling's ScalingSpec
    ("datamodules",),
    ("drawing",),  # Grad-CAM and image grids: used by callbacks and by `effnet cam`
    ("train", "checkpoint_io"),  # the runtime; checkpoint_io: old runs' config.yaml path
    ("callbacks",),
    ("assembly",),  # LightningCLI, Trainer, plugins, resume, the training command
    ("study", "tools"),
    ("cli",),
)
SIBLING_DIRECTION = {"tools": {"study"}}  # within a layer: tools never import study (study runs tools' benchmark)


def module_files() -> dict[str, Path]:
    """Every module of the package by its dotted name (package __init__ files as the package's name)."""
    modules = {}
    for folder, package in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


def part_of(module: str) -> str | None:
    """The top-level part of the package a module belongs to ('train', 'cli', ...); None for the package root."""
    rest = module.removeprefix(f"{PACKAGE}.")
    return None if rest == PACKAGE or module == PACKAGE else rest.split(".")[0]


def layer_of(module: str) -> int:
    part = part_of(module)
    return -1 if part is None else next(i for i, parts in enumerate(LAYERS) if part in parts)


def imported_names(module: str, path: Path) -> set[str]:
    """The package modules `module` imports anywhere in its file (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
    return {name for name in names if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """'a imports b' for every import of a higher tier, or of a sibling the sibling rule forbids."""
    wrong = []
    for module, path in modules.items():
        for name in imported_names(module, path):
            if layer_of(name) > layer_of(module) or part_of(name) in SIBLING_DIRECTION.get(part_of(module), ()):
                wrong.append(f"{module} imports {name}")
    return wrong


def test_no_import_statement_reaches_a_higher_layer() -> None:
    assert not upward_imports(module_files())


def test_each_tier_is_checked_on_its_own(tmp_path: Path) -> None:
    """Tiers that used to share one layer are told apart: datamodules may not import the training runtime, the
    runtime may not import callbacks, callbacks may not import the assembly."""
    cases = {
        f"{PACKAGE}.datamodules.x": f"from {PACKAGE}.train import module",
        f"{PACKAGE}.train.x": f"from {PACKAGE}.callbacks import EMA",
        f"{PACKAGE}.callbacks.x": f"from {PACKAGE}.assembly import run",
        f"{PACKAGE}.drawing.x": f"import {PACKAGE}.datamodules.base",  # allowed: datamodules sit below drawing
    }
    modules = {}
    for i, (module, line) in enumerate(cases.items()):
        modules[module] = tmp_path / f"m{i}.py"
        modules[module].write_text(line + "\n")
    assert upward_imports(modules) == [
        f"{PACKAGE}.datamodules.x imports {PACKAGE}.train",
        f"{PACKAGE}.train.x imports {PACKAGE}.callbacks",
        f"{PACKAGE}.callbacks.x imports {PACKAGE}.assembly",
    ]


IMPORT_LAYERS = """
import importlib, json, sys
modules, layers = json.loads(sys.argv[1]), json.loads(sys.argv[2])
part = lambda m: m.removeprefix("effnet_lightning.").split(".")[0] if m.startswith("effnet_lightning.") else None
found = {}
for depth, parts in enumerate(layers):
    for name in modules:
        if part(name) in parts:
            importlib.import_module(name)
    higher = {p for below in layers[depth + 1 :] for p in below}
    found[depth] = sorted(m for m in sys.modules if part(m) in higher)
print(json.dumps(found))
"""


def test_each_layer_imports_without_the_layers_above() -> None:
    """One fresh Python imports the modules of each layer in turn, lowest first: after each, no module of a
    higher layer may be loaded."""
    modules = [name for name in module_files() if name != PACKAGE]
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_LAYERS, json.dumps(modules), json.dumps(LAYERS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {str(depth): [] for depth in range(len(LAYERS))}


def test_benchmarks_do_not_import_from_tests() -> None:
    """Benchmarks run on their own: no import of a tests/ module, and no tests/ folder put on sys.path."""
    test_modules = {path.stem for path in (ROOT / "tests").rglob("*.py")} | {"tests"}
    wrong = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [(node.module or "").split(".")[0]]
            elif isinstance(node, ast.Constant) and node.value == "tests":
                names = ["tests"]
            wrong += [f"{path.name}: {name}" for name in names if name in test_modules]
    assert not wrong, wrong


READ_CHECKPOINT = """
import sys
from pathlib import Path
from effnet_lightning.tools.cam import load_network
from effnet_lightning.tools.export import export
network, names, data_config = load_network(sys.argv[1], "ema")
export(sys.argv[1], str(Path(sys.argv[2]) / "model.safetensors"))
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith("lightning")} | {
    m for m in sys.modules if m.startswith(("effnet_lightning.callbacks", "effnet_lightning.assembly"))}))
"""


def test_export_and_cam_read_checkpoints_without_lightning(tmp_path: Path) -> None:
    """`effnet export` and `effnet cam` read a checkpoint (network, weights, classes, preprocessing) through
    train/checkpoint_format.py alone: no Lightning, LightningCLI or callback is imported for it."""
    ckpt = ROOT / "tests" / "support" / "data" / "pre_layers" / "last.ckpt"
    done = subprocess.run(
        [sys.executable, "-c", READ_CHECKPOINT, str(ckpt), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
