"""CIFAR-10 stand-ins in the real on-disk format, with learnable classes (used by tests and benchmarks).

Writes `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta: pickled dicts with 'data' uint8
(N, 3072) in R, G, B planes, 'labels', 'batch_label', 'filenames') and the `cifar-10-python.tar.gz` holding
it, byte-for-byte reproducible. Each class is a distinct colour with a class-specific stripe period plus
noise, so a small network separates them within an epoch. Only torchvision's checksum constants need patching
(`checksum_constants`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

BASE_FOLDER = "cifar-10-batches-py"  # torchvision CIFAR10.base_folder
ARCHIVE = "cifar-10-python.tar.gz"  # torchvision CIFAR10.filename
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PALETTE = np.array(  # one RGB colour per class, far apart
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [128, 128, 128],
        [20, 20, 20],
    ],
    dtype=np.float32,
)


def make_images(labels: np.ndarray, rng: np.random.Generator, noise: float = 25.0) -> np.ndarray:
    """(N,) labels -> (N, 32, 32, 3) uint8: class colour, stripes (period 2+label rows), noise (std 0-255)."""
    rows = np.arange(32)[None, :, None, None]
    stripes = np.where((rows // (2 + labels[:, None, None, None])) % 2 == 0, 1.0, 0.6)
    images = PALETTE[labels][:, None, None, :] * stripes + rng.normal(0, noise, (len(labels), 32, 32, 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def _batch(labels: np.ndarray, rng: np.random.Generator, name: str) -> dict:
    images = make_images(labels, rng)
    return {
        "batch_label": name,
        "labels": labels.tolist(),
        "data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),  # CHW planes, like the real files
        "filenames": [f"standin_{name.replace(' ', '_')}_{i}.png" for i in range(len(labels))],
    }


def write_cifar10(root: Path, train_per_class: int = 60, test_per_class: int = 20, seed: int = 0) -> dict[str, str]:
    """Write the extracted folder and the archive under `root`; return {file name: md5} for every file."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / BASE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    contents = {
        f"data_batch_{i + 1}": _batch(part, rng, f"training batch {i + 1} of 5")
        for i, part in enumerate(np.array_split(train_labels, 5))
    }
    contents["test_batch"] = _batch(
        rng.permutation(np.repeat(np.arange(10), test_per_class)), rng, "testing batch 1 of 1"
    )
    contents["batches.meta"] = {
        "label_names": LABEL_NAMES,
        "num_cases_per_batch": len(train_labels) // 5,
        "num_vis": 3072,
    }
    for name, value in contents.items():
        (folder / name).write_bytes(pickle.dumps(value, protocol=2))
    (Path(root) / ARCHIVE).write_bytes(_tar_gz(folder))
    md5s = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in contents}
    md5s[ARCHIVE] = hashlib.md5((Path(root) / ARCHIVE).read_bytes()).hexdigest()
    return md5s


def _tar_gz(folder: Path) -> bytes:
    """The folder as a .tar.gz with fixed mtimes, so its md5 is reproducible."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            info = tarfile.TarInfo(f"{BASE_FOLDER}/{path.name}")
            info.size, info.mtime = path.stat().st_size, 0
            tar.addfile(info, io.BytesIO(path.read_bytes()))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def checksum_constants(md5s: dict[str, str]) -> dict[str, object]:
    """torchvision CIFAR10 class attributes that make it accept the stand-ins (other constants unchanged)."""
    return {
        "train_list": [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)],
        "test_list": [["test_batch", md5s["test_batch"]]],
        "meta": {"filename": "batches.meta", "key": "label_names", "md5": md5s["batches.meta"]},
        "tgz_md5": md5s[ARCHIVE],
    }


SITECUSTOMIZE = '''"""Written by tests: torchvision accepts CIFAR-10 stand-ins in subprocesses."""
import torchvision.datasets

for _name, _value in {constants!r}.items():
    setattr(torchvision.datasets.CIFAR10, _name, _value)
'''


def write_sitecustomize(folder: Path, md5s: dict[str, str]) -> Path:
    """Writes a sitecustomize.py applying `checksum_constants` in any Python with `folder` on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sitecustomize.py"
    path.write_text(SITECUSTOMIZE.format(constants=checksum_constants(md5s)))
    return path
