"""Find datamodule plugins, so a config can name one by its short class name (`data: {class_path: MyData}`).

Three places, in order:
1. every module in the `effnet_lightning.datamodules` package: a file dropped into `datamodules/` (editable
   install) is imported at once;
2. the entry-point group `effnet_lightning.datamodules` of installed packages
   (`[project.entry-points."effnet_lightning.datamodules"] mydata = "my_pkg.data:MyData"`);
3. any importable class by its full dotted path (`--data my_pkg.data.MyData`); the working directory is searched
   last, as `python -c` would, so a `my_data.py` beside the user imports without being installed.
Importing a subclass of LightningDataModule is what makes jsonargparse accept its short name. A plugin that fails
to import is reported (which file, which error) and the others still load.

`resolve` checks a `--data`/`class_path` value before jsonargparse does: its own report of a name it cannot use
("expected one of null, LightningDataModule") hides why (the import's error, the closest known name).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from lightning.pytorch import LightningDataModule

from effnet_lightning.console import output
from effnet_lightning.errors import ConfigError

__all__ = ["DataClassError", "Failed", "Found", "discover", "load_and_report", "main", "resolve"]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "effnet_lightning.datamodules"
PACKAGE = "effnet_lightning.datamodules"
BUILT_IN = frozenset({"base", "cifar10", "image_folder", "imagenet"})  # the datamodule files this repository ships
GUIDE = "see docs/datamodules.md"
CLOSE_MATCH_CUTOFF = 0.6  # difflib's default similarity ratio: "Cifar10DataModul" -> "CIFAR10DataModule"


class DataClassError(ConfigError):
    """A `--data`/`class_path` value that names no usable datamodule; the message says why and what to do."""


@dataclass(frozen=True)
class Found:
    name: str  # short class name, usable as `class_path`
    path: str  # full dotted path
    origin: str  # "built-in", the drop-in file it came from, or "entry point <name> (<distribution>)"
    description: str = ""  # the first line of the class's docstring


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
        file = f"{info.module_finder.path}/{info.name.rsplit('.', 1)[1]}.py"  # type: ignore[union-attr]
        origin = "built-in" if info.name.rsplit(".", 1)[1] in BUILT_IN else file
        try:
            module = importlib.import_module(info.name)
        except Exception as err:  # a broken plugin must not take the others down
            failed.append(Failed(file, f"{type(err).__name__}: {err}"))
            continue
        for cls in _datamodules_defined_in(module):
            found.setdefault(cls.__name__, _found(cls, origin))
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
        found.setdefault(cls.__name__, _found(cls, origin))
    return sorted(found.values(), key=lambda f: f.name), failed


def _found(cls: type, origin: str) -> Found:
    """The class's own docstring (not its base class's), else its module's."""
    doc = inspect.cleandoc(cls.__doc__ or getattr(sys.modules.get(cls.__module__), "__doc__", None) or "")
    return Found(cls.__name__, f"{cls.__module__}.{cls.__qualname__}", origin, doc.split("\n", 1)[0])


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
        log.warning(f"effnet: warning: datamodule plugin {f.origin} failed to import: {f.error}")


def resolve(value: str) -> type:
    """The datamodule class a `--data` value or `class_path` names (a short name or a dotted path), or a
    DataClassError that says why it cannot be used. A short name is looked up after importing every plugin."""
    if "." not in value:
        classes = _imported_datamodules()  # `effnet` imported every plugin already (load_and_report)
        if value not in classes:
            discover()  # a caller that has not: import them, then look again
            classes = _imported_datamodules()
        if value in classes:
            return classes[value]
        known = sorted(set(classes) - {LightningDataModule.__name__})
        by_lower = {name.lower(): name for name in known}
        close = difflib.get_close_matches(value.lower(), by_lower, n=1, cutoff=CLOSE_MATCH_CUTOFF)
        hint = f"did you mean {by_lower[close[0]]}? " if close else ""
        raise DataClassError(
            f"data: no datamodule is named {value!r}; {hint}known: {', '.join(known)} ('effnet datamodules' lists "
            f"them and where they come from; a class of your own needs its dotted path or a plugin, {GUIDE})"
        )
    module_name, _, class_name = value.rpartition(".")
    try:
        with _working_directory_searched():
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name + ".").startswith(err.name + "."):  # the plugin is not on the path
            raise DataClassError(
                f"data: cannot import {value}: {type(err).__name__}: {err} (searched sys.path and {os.getcwd()}); "
                f"run from a folder where `python -c 'import {module_name}'` works, or install the plugin ({GUIDE})"
            ) from err
        raise DataClassError(f"data: importing {module_name} for {value} failed: {type(err).__name__}: {err}") from err
    except Exception as err:  # the plugin's own code raised while importing
        raise DataClassError(f"data: importing {module_name} for {value} failed: {type(err).__name__}: {err}") from err
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = ", ".join(c.__name__ for c in _datamodules_defined_in(module)) or "none"
        raise DataClassError(
            f"data: cannot import {value}: module {module_name} ({module.__file__}) has no {class_name!r}; "
            f"the datamodules it defines: {defined}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, LightningDataModule)):
        kind = f"class {cls.__name__}" if inspect.isclass(cls) else f"a {type(cls).__name__}"
        raise DataClassError(
            f"data: {value} is {kind}, not a LightningDataModule subclass; a datamodule plugin subclasses "
            f"ImageDataModule ({GUIDE})"
        )
    return cls


@contextlib.contextmanager
def _working_directory_searched() -> Iterator[None]:
    """Let a dotted path name a module in the working directory, as `python -c` and `python -m` do, while it is
    imported: sys.path is as it was afterwards (the module stays imported, so jsonargparse finds it). Appended, not
    prepended, so that a file there never shadows an installed module of the same name."""
    cwd = os.getcwd()
    if any(Path(p or ".").resolve() == Path(cwd).resolve() for p in sys.path):
        yield
        return
    sys.path.append(cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the import itself may have removed it
            sys.path.remove(cwd)


def _imported_datamodules() -> dict[str, type]:
    """Every LightningDataModule subclass imported so far, by the short name jsonargparse accepts."""
    seen: dict[str, type] = {}
    pending = [LightningDataModule]
    while pending:
        cls = pending.pop()
        seen[cls.__name__] = cls
        pending += [sub for sub in cls.__subclasses__() if sub not in seen.values()]
    return seen


def main() -> None:
    """`effnet datamodules`: each datamodule's short name, what it is and where it comes from (the command's
    output: stdout under `effnet`)."""
    found, failed = discover()
    width = max((len(f.name) for f in found), default=4)
    for f in found:
        output().info(f"{f.name:<{width}}  {f.description}")
        output().info(f"{'':<{width}}  [{f.origin}: {f.path}]")
    for f in failed:
        output().info(f"FAILED  {f.origin}: {f.error}")
