"""Find datamodule plugins, so a config can name one by its short class name (`data: {class_path: MyData}`).

Three places, in order:
1. every module in the `effnet_lightning.datamodules` package: a file dropped into `datamodules/` (editable
   install) is imported at once;
2. the entry-point group `effnet_lightning.datamodules` of installed packages
   (`[project.entry-points."effnet_lightning.datamodules"] mydata = "my_pkg.data:MyData"`);
3. any importable class by its full dotted path, which jsonargparse resolves by itself.
Importing a subclass of LightningDataModule is what makes jsonargparse accept its short name. A plugin that fails
to import is reported (which file, which error) and the others still load.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from lightning.pytorch import LightningDataModule

ENTRY_POINT_GROUP = "effnet_lightning.datamodules"
PACKAGE = "effnet_lightning.datamodules"


@dataclass(frozen=True)
class Found:
    name: str  # short class name, usable as `class_path`
    path: str  # full dotted path
    origin: str  # file it came from, or "entry point <name> (<distribution>)"


@dataclass(frozen=True)
class Failed:
    origin: str
    error: str


def discover() -> tuple[list[Found], list[Failed]]:
    """Import every plugin; return the datamodule classes found and the plugins that failed to import."""
    found: dict[str, Found] = {}
    failed: list[Failed] = []
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{PACKAGE}."):
        origin = f"{info.module_finder.path}/{info.name.rsplit('.', 1)[1]}.py"  # type: ignore[union-attr]
        try:
            module = importlib.import_module(info.name)
        except Exception as err:  # a broken plugin must not take the others down
            failed.append(Failed(origin, f"{type(err).__name__}: {err}"))
            continue
        for cls in _datamodules_defined_in(module):
            found.setdefault(cls.__name__, Found(cls.__name__, f"{cls.__module__}.{cls.__qualname__}", origin))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name} ({entry.dist.name if entry.dist else '?'})"
        try:
            cls = entry.load()
        except Exception as err:
            failed.append(Failed(origin, f"{type(err).__name__}: {err}"))
            continue
        if not (inspect.isclass(cls) and issubclass(cls, LightningDataModule)):
            failed.append(Failed(origin, f"{entry.value} is not a LightningDataModule subclass"))
            continue
        found.setdefault(cls.__name__, Found(cls.__name__, f"{cls.__module__}.{cls.__qualname__}", origin))
    return sorted(found.values(), key=lambda f: f.name), failed


def _datamodules_defined_in(module: object) -> list[type]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, LightningDataModule) and cls.__module__ == module.__name__ and not inspect.isabstract(cls)
    ]


def load_and_report() -> None:
    """Import plugins before the CLI parses a config; say on stderr which ones failed."""
    _, failed = discover()
    for f in failed:
        print(f"effnet: warning: datamodule plugin {f.origin} failed to import: {f.error}", file=sys.stderr)


def main() -> int:
    """`effnet datamodules`: what was found and from where."""
    found, failed = discover()
    width = max((len(f.name) for f in found), default=4)
    for f in found:
        print(f"{f.name:<{width}}  {f.path}  [{f.origin}]")
    for f in failed:
        print(f"FAILED  {f.origin}: {f.error}")
    return 0
