"""Datamodule plugins, in process (`cli.main`): a file dropped into datamodules/, an installed package's entry
point, broken plugins of both kinds reported without breaking the rest, `effnet datamodules`, a plugin whose
constructor raises or whose labels exceed its num_classes, a dotted path or short name that names no usable
datamodule (one line that says why), and `--data=X` over a config's other class (a warning of what carried over).

The drop-in files must not touch the working tree, even if a test dies halfway. So they go into a folder in
tmp_path that is added to the package's `__path__` (the folders Python searches for its submodules, which is also
what discovery iterates) for the duration of this module. The entry-point package is a folder with a .dist-info
directory on sys.path, which is all importlib.metadata reads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from effnet_run import effnet, error_lines

import effnet_lightning.datamodules

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
RAISING = '''"""A datamodule plugin whose constructor refuses its arguments."""
from lightning.pytorch import LightningDataModule


class RaisingData(LightningDataModule):
    num_classes = 2

    def __init__(self, resolution: int = 32, server: str = "localhost") -> None:
        super().__init__()
        raise RuntimeError(f"cannot reach the foo server at {server}; start it with 'foo serve'")
'''
BAD_LABELS = '''"""A datamodule plugin whose labels exceed its num_classes (label 2 of classes 0..1)."""
import numpy as np
from effnet_lightning.datamodules.base import ArrayDataset, ImageDataModule


class BadLabelData(ImageDataModule):
    num_classes = 2

    def __init__(self, data_dir: str = "unused", resolution: int = 32, batch_size: int = 8, num_workers: int = 0):
        super().__init__(data_dir, resolution, batch_size, num_workers)

    def train_dataset(self) -> ArrayDataset:
        return ArrayDataset(np.zeros((16, 32, 32, 3), np.uint8), [2] * 16)

    val_dataset = train_dataset
'''
TO_TENSOR = '''"""A datamodule plugin whose dataset yields what ToTensor gives: CHW float tensors in 0-1."""
import torch
from torch.utils.data import Dataset
from effnet_lightning.datamodules.base import ImageDataModule


class TensorImages(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, 32, 32), index / 16), index % 2


class ToTensorData(ImageDataModule):
    num_classes = 2

    def __init__(self, data_dir: str = "unused", resolution: int = 32, batch_size: int = 8, num_workers: int = 0):
        super().__init__(data_dir, resolution, batch_size, num_workers)

    def train_dataset(self) -> TensorImages:
        return TensorImages()

    val_dataset = train_dataset
'''
DROP_INS = ("my_drop_in", "broken_plugin", "raising_data", "bad_labels", "to_tensor")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Drop-ins (one broken) in a folder added to the datamodules package, and a package with entry points on
    sys.path; yields the drop-in folder. Afterwards the package path, sys.path and sys.modules are as before."""
    root = tmp_path_factory.mktemp("plugins")
    drop_ins = root / "datamodules"
    drop_ins.mkdir()
    (drop_ins / "my_drop_in.py").write_text(PLUGIN.format(name="DropInData"))
    (drop_ins / "broken_plugin.py").write_text('raise ImportError("needs the foo package")\n')
    (drop_ins / "raising_data.py").write_text(RAISING)
    (drop_ins / "bad_labels.py").write_text(BAD_LABELS)
    (drop_ins / "to_tensor.py").write_text(TO_TENSOR)

    installed = root / "site"
    (installed / "plugin_pkg").mkdir(parents=True)
    (installed / "plugin_pkg" / "__init__.py").write_text(PLUGIN.format(name="EntryPointData"))
    dist_info = installed / "plugin_pkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[effnet_lightning.datamodules]\nentry_data = plugin_pkg:EntryPointData\nbroken = plugin_pkg_gone:Data\n"
    )
    package = effnet_lightning.datamodules
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(package, "__path__", [*package.__path__, str(drop_ins)])
        patch.syspath_prepend(str(installed))
        yield drop_ins
    for name in [*(f"{package.__name__}.{module}" for module in DROP_INS), "plugin_pkg"]:
        sys.modules.pop(name, None)


def fit_args(root: Path, *data_args: str) -> list[str]:
    return [
        "fit",
        *data_args,
        "--model.scaling.phi=-4",
        "--model.scaling.resolution=32",
        "--trainer.fast_dev_run=1",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
    ]


def test_effnet_datamodules_lists_names_descriptions_origins_and_failures(
    plugins: Path, capfd: pytest.CaptureFixture
) -> None:
    done = effnet(capfd, "datamodules")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    rows = {
        line.split()[0]: (line, lines[i + 1])
        for i, line in enumerate(lines)
        if line[:1].isalpha() and not line.startswith("FAILED")
    }
    drop_in, drop_in_origin = rows["DropInData"]
    assert drop_in.split(maxsplit=1)[1] == "A datamodule plugin: black images are class 0, white ones class 1 (32 px)."
    assert drop_in_origin.strip() == f"[{plugins}/my_drop_in.py: effnet_lightning.datamodules.my_drop_in.DropInData]"
    assert rows["EntryPointData"][1].strip() == "[entry point entry_data (plugin-pkg): plugin_pkg.EntryPointData]"
    cifar, cifar_origin = rows["CIFAR10DataModule"]
    assert cifar.split(maxsplit=1)[1] == "CIFAR-10: 10 classes, 45k/5k train/val by default (seeded), 10k test."
    assert cifar_origin.strip() == "[built-in: effnet_lightning.datamodules.cifar10.CIFAR10DataModule]"
    assert {"ImageNetDataModule", "ImageFolderDataModule", "ImageDataModule"} <= set(rows)
    failed = [line for line in lines if line.startswith("FAILED")]
    assert f"FAILED  {plugins}/broken_plugin.py: ImportError: needs the foo package" in failed
    assert "FAILED  entry point broken (plugin-pkg): ModuleNotFoundError: No module named 'plugin_pkg_gone'" in failed
    assert not (Path(effnet_lightning.datamodules.__path__[0]) / "my_drop_in.py").exists()  # tree untouched


@pytest.mark.parametrize(("name", "how"), [("DropInData", "config"), ("EntryPointData", "command line")])
def test_plugin_trains_by_short_name(
    plugins: Path, tmp_path: Path, capfd: pytest.CaptureFixture, name: str, how: str
) -> None:
    if how == "config":
        (tmp_path / "data.yaml").write_text(f"data:\n  class_path: {name}\n  init_args:\n    data_dir: {tmp_path}\n")
        data_args = ["--config", str(tmp_path / "data.yaml")]
    else:
        data_args = [f"--data={name}", f"--data.data_dir={tmp_path}"]
    done = effnet(capfd, *fit_args(tmp_path, *data_args))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / f"used-{name}").exists()
    assert "datamodule plugin" in done.stderr and "broken_plugin.py failed to import: ImportError" in done.stderr


def test_plugin_whose_constructor_raises_shows_its_message(plugins: Path, tmp_path: Path, capfd) -> None:
    done = effnet(capfd, *fit_args(tmp_path, "--data=RaisingData", "--data.server=gpu-7"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr)[-1] == (
        "effnet fit: error: data: RaisingData(...) failed: RuntimeError: cannot reach the foo server at gpu-7; "
        "start it with 'foo serve'"
    )


def test_labels_beyond_num_classes_name_both(plugins: Path, tmp_path: Path, capfd) -> None:
    done = effnet(capfd, *fit_args(tmp_path, "--data=BadLabelData"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr)[-1] == (
        "effnet fit: error: label 2 in the data is outside 0..1: BadLabelData declares num_classes=2; "
        "fix the dataset's labels or the datamodule's num_classes"
    )


def test_a_dataset_of_chw_float_tensors_is_one_line_exit_2(
    plugins: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Before: `RuntimeError: The size of tensor a (32) must match the size of tensor b (3)` from deep inside the
    batch's resize. Now the first sample of the split is checked: the class, what it yielded, the fix."""
    done = effnet(capfd, *fit_args(tmp_path, "--data=ToTensorData"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr)[-1] == (
        "effnet fit: error: TensorImages (the train dataset of ToTensorData) yielded a Tensor of shape (3, 32, 32), "
        "dtype float32; expected an (image, label) pair whose image is an HWC uint8 array of shape "
        "(height, width, 3). Fix: yield the image before ToTensor/Normalize (np.asarray of the PIL image); the "
        "datamodule converts, resizes and normalizes it."
    )


# ---- a `--data` value that names no usable datamodule -------------------------------------------------------------
NOT_A_DATAMODULE = "class NotData:\n    pass\n"
OTHER_CLASS = "from lightning.pytorch import LightningDataModule\n\n\nclass OtherData(LightningDataModule):\n    pass\n"
GUIDE = "see docs/datamodules.md"


@pytest.fixture
def in_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path as the working directory; sys.path and the modules written there are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("cwd_"):
            sys.modules.pop(name)


@pytest.mark.parametrize(
    ("module", "source", "value", "message"),
    [
        (
            None,
            None,
            "cwd_missing.Data",
            "cannot import cwd_missing.Data: ModuleNotFoundError: No module named 'cwd_missing' (searched sys.path and "
            "{cwd}); run from a folder where `python -c 'import cwd_missing'` works, or install the plugin ({guide})",
        ),
        (
            "cwd_raises",
            'raise ImportError("needs the foo package")\n',
            "cwd_raises.Data",
            "importing cwd_raises for cwd_raises.Data failed: ImportError: needs the foo package",
        ),
        (
            "cwd_needs",
            "import cwd_gone_dependency\n",
            "cwd_needs.Data",
            "importing cwd_needs for cwd_needs.Data failed: ModuleNotFoundError: No module named 'cwd_gone_dependency'",
        ),
        (
            "cwd_other",
            OTHER_CLASS,
            "cwd_other.Data",
            "cannot import cwd_other.Data: module cwd_other ({cwd}/cwd_other.py) has no 'Data'; the datamodules it "
            "defines: OtherData",
        ),
        (
            "cwd_plain",
            NOT_A_DATAMODULE,
            "cwd_plain.NotData",
            "cwd_plain.NotData is class NotData, not a LightningDataModule subclass; a datamodule plugin subclasses "
            "ImageDataModule ({guide})",
        ),
    ],
    ids=["not-found", "import-error", "missing-dependency", "no-such-class", "not-a-datamodule"],
)
def test_dotted_path_that_fails_says_why(
    in_folder: Path, capfd: pytest.CaptureFixture, module: str | None, source: str, value: str, message: str
) -> None:
    if module is not None:
        (in_folder / f"{module}.py").write_text(source)
    done = effnet(capfd, *fit_args(in_folder, f"--data={value}"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in error_lines(done.stderr) if line.startswith("effnet fit: error")]
    assert errors == [f"effnet fit: error: data: {message.format(cwd=os.getcwd(), guide=GUIDE)}"]


def test_dotted_path_in_a_config_is_checked_too(in_folder: Path, capfd: pytest.CaptureFixture) -> None:
    (in_folder / "cwd_broken.py").write_text('raise ImportError("needs the foo package")\n')
    (in_folder / "data.yaml").write_text("data:\n  class_path: cwd_broken.Data\n")
    done = effnet(capfd, *fit_args(in_folder, "--config", "data.yaml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr)[-1] == (
        "effnet fit: error: data: importing cwd_broken for cwd_broken.Data failed: ImportError: needs the foo package"
    )


def test_dotted_path_imports_from_the_working_directory(in_folder: Path, capfd: pytest.CaptureFixture) -> None:
    """As `python -c` does: a module beside the user needs no install (searched after everything installed)."""
    (in_folder / "cwd_plugin.py").write_text(PLUGIN.format(name="CwdData"))
    done = effnet(capfd, *fit_args(in_folder, "--data=cwd_plugin.CwdData", "--print_config"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert yaml.safe_load(done.stdout)["data"]["class_path"] == "cwd_plugin.CwdData"
    assert str(in_folder) not in sys.path  # searched for that import only: sys.path is as it was


@pytest.mark.parametrize("how", ["data file", "data yaml"])
def test_data_section_from_a_file_or_yaml_is_checked(tmp_path: Path, capfd, how: str) -> None:
    """`--data FILE` holds the data section itself: {class_path, init_args}, not a whole config."""
    section = "{class_path: ImageFolderDataModul, init_args: {data_dir: " + str(tmp_path) + "}}"
    if how == "data file":
        (tmp_path / "data.yaml").write_text(section)
        section = str(tmp_path / "data.yaml")
    done = effnet(capfd, *fit_args(tmp_path, "--data", section))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = [line for line in error_lines(done.stderr) if line.startswith("effnet fit: error")]
    assert "no datamodule is named 'ImageFolderDataModul'; did you mean ImageFolderDataModule? " in line


def test_mistyped_short_name_suggests_the_closest(plugins: Path, tmp_path: Path, capfd) -> None:
    done = effnet(capfd, *fit_args(tmp_path, "--data=Cifar10DataModul"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = [line for line in error_lines(done.stderr) if line.startswith("effnet fit: error")]
    assert line.startswith("effnet fit: error: data: no datamodule is named 'Cifar10DataModul'; did you mean ")
    assert "did you mean CIFAR10DataModule? known: " in line
    known = set(line.split("known: ")[1].split(" (")[0].split(", "))
    assert {"CIFAR10DataModule", "ImageFolderDataModule", "ImageNetDataModule", "DropInData", "EntryPointData"} <= known
    assert "'effnet datamodules' lists them" in line


# ---- `--data=X` over a config that names another class -----------------------------------------------------------
def test_switching_class_warns_which_config_settings_carry_over(tmp_path: Path, capfd) -> None:
    config = tmp_path / "cifar.yaml"
    config.write_text(
        "data:\n  class_path: CIFAR10DataModule\n  init_args:\n"
        f"    data_dir: {tmp_path}/cifar\n    val_size: 100\n    batch_size: 16\n"
    )
    args = fit_args(tmp_path, "--config", str(config), "--data=ImageFolderDataModule")
    done = effnet(capfd, *args, "--print_config")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "effnet: warning: --data=ImageFolderDataModule replaces the config's CIFAR10DataModule but keeps its data "
        "settings batch_size, data_dir (same-named arguments carry over); set them on the command line if the new "
        "class's defaults were meant"
    ) in done.stderr.splitlines()
    printed = yaml.safe_load(done.stdout)["data"]  # what the warning says is what jsonargparse did
    assert printed["class_path"].endswith("ImageFolderDataModule")
    assert printed["init_args"]["data_dir"] == f"{tmp_path}/cifar" and printed["init_args"]["batch_size"] == 16


def test_switching_class_with_settings_given_again_does_not_warn(tmp_path: Path, capfd) -> None:
    config = tmp_path / "cifar.yaml"
    config.write_text(f"data:\n  class_path: CIFAR10DataModule\n  init_args:\n    data_dir: {tmp_path}/cifar\n")
    args = fit_args(tmp_path, "--config", str(config), "--data=ImageFolderDataModule", f"--data.data_dir={tmp_path}")
    done = effnet(capfd, *args, "--print_config")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "carry over" not in done.stderr
