"""Datamodule plugins through the console script: a file dropped into datamodules/, an installed package's entry
point, broken plugins of both kinds reported without breaking the rest, `effnet datamodules`.

The drop-in file must not touch the working tree, even if a test dies halfway. So the tests copy the package
(effnet_lightning/ with datamodules/ and callbacks/ placed where the package-dir mapping puts them; about 40 small
files) to tmp_path, drop the plugin into the copy's datamodules/ and put the copy first on PYTHONPATH. Python's
path finder then imports the copy ahead of the editable install, and discovery runs unchanged on a real folder.
The entry-point package is a folder with a .dist-info directory on PYTHONPATH, which is all importlib.metadata
reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import effnet_lightning.callbacks
import effnet_lightning.datamodules

EFFNET = Path(sys.executable).with_name("effnet")
PLUGIN = '''"""A datamodule plugin: black images are class 0, white ones class 1 (32 px)."""
from pathlib import Path

import numpy as np
from effnet_lightning.datamodules.base import ArrayDataset, ImageDataModule


class {name}(ImageDataModule):
    num_classes = 2

    def __init__(self, data_dir: str = "unused", resolution: int = 32, batch_size: int = 8, num_workers: int = 0):
        super().__init__(data_dir, resolution, batch_size, num_workers)

    def setup(self, stage: str) -> None:
        Path(self.data_dir, "used-{name}").touch()  # evidence for the test that this class ran
        super().setup(stage)

    def train_dataset(self) -> ArrayDataset:
        images = np.zeros((16, 32, 32, 3), np.uint8)
        images[8:] = 255
        return ArrayDataset(images, [0] * 8 + [1] * 8)

    val_dataset = train_dataset
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH with a copy of the package holding drop-ins (one broken) and a package with entry points."""
    root = tmp_path_factory.mktemp("plugins")
    package = root / "copy" / "effnet_lightning"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(effnet_lightning.__path__[0]), package, ignore=ignore)
    shutil.copytree(Path(effnet_lightning.datamodules.__path__[0]), package / "datamodules", ignore=ignore)
    shutil.copytree(Path(effnet_lightning.callbacks.__path__[0]), package / "callbacks", ignore=ignore)
    (package / "datamodules" / "my_drop_in.py").write_text(PLUGIN.format(name="DropInData"))
    (package / "datamodules" / "broken_plugin.py").write_text('raise ImportError("needs the foo package")\n')

    installed = root / "site"
    (installed / "plugin_pkg").mkdir(parents=True)
    (installed / "plugin_pkg" / "__init__.py").write_text(PLUGIN.format(name="EntryPointData"))
    dist_info = installed / "plugin_pkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[effnet_lightning.datamodules]\nentry_data = plugin_pkg:EntryPointData\nbroken = plugin_pkg_gone:Data\n"
    )
    path = os.pathsep.join(filter(None, [str(root / "copy"), str(installed), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def effnet(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(EFFNET), *args], env=env, capture_output=True, text=True, timeout=300)


def test_effnet_datamodules_lists_names_origins_and_failures(plugin_env: dict[str, str]) -> None:
    done = effnet(["datamodules"], plugin_env)
    assert done.returncode == 0, done.stderr[-2000:]
    copy = Path(plugin_env["PYTHONPATH"].split(os.pathsep)[0]) / "effnet_lightning" / "datamodules"
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if not line.startswith("FAILED")}
    assert rows["DropInData"].split() == [
        "DropInData", "effnet_lightning.datamodules.my_drop_in.DropInData", f"[{copy}/my_drop_in.py]"
    ]  # fmt: skip
    assert rows["EntryPointData"].endswith("plugin_pkg.EntryPointData  [entry point entry_data (plugin-pkg)]")
    assert {"ImageNetDataModule", "ImageFolderDataModule", "CIFAR10DataModule"} <= set(rows)
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert f"FAILED  {copy}/broken_plugin.py: ImportError: needs the foo package" in failed
    assert "FAILED  entry point broken (plugin-pkg): ModuleNotFoundError: No module named 'plugin_pkg_gone'" in failed
    assert not (Path(effnet_lightning.datamodules.__path__[0]) / "my_drop_in.py").exists()  # tree untouched


@pytest.mark.parametrize(("name", "how"), [("DropInData", "config"), ("EntryPointData", "command line")])
def test_plugin_trains_by_short_name(plugin_env: dict[str, str], tmp_path: Path, name: str, how: str) -> None:
    if how == "config":
        (tmp_path / "data.yaml").write_text(f"data:\n  class_path: {name}\n  init_args:\n    data_dir: {tmp_path}\n")
        data_args = ["--config", str(tmp_path / "data.yaml")]
    else:
        data_args = [f"--data={name}", f"--data.data_dir={tmp_path}"]
    done = effnet(
        ["fit", *data_args, "--model.scaling.phi=-4", "--model.scaling.resolution=32", "--trainer.fast_dev_run=1",
         "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"],
        plugin_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / f"used-{name}").exists()
    assert "datamodule plugin" in done.stderr and "broken_plugin.py failed to import: ImportError" in done.stderr
