#!/usr/bin/env bash
# Builds .whl/: the wheels the GPU machine lacks (it has torch, lightning, timm, torchmetrics, tensorboard, opencv,
# rich, numpy, scipy, pyyaml, pytest, but no package registry), at the versions uv.lock pins, for CPython 3.12 on
# x86-64 Linux (the device's python3). Run once here, in the repository root; benchmarks/gpu_checks.sh installs
# them there. About 8 MB, well under the device tool's 64 MiB carry limit. See docs/gpu.md.
#
#   bash benchmarks/build_wheelhouse.sh            # then carry ".whl" in the device call
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
# albumentations 2.0.8 and what it needs beyond the device image; jsonargparse with its [signatures] extra.
PACKAGES="albumentations albucore pydantic pydantic-core annotated-types typing-inspection typing-extensions
stringzilla simsimd jsonargparse docstring-parser typeshed-client"
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"  # worktrees share the main checkout's exclude file
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >>"$EXCLUDE"
rm -rf .whl && mkdir .whl
for name in $PACKAGES; do
  version=$(awk -v n="$name" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' uv.lock)
  [ -n "$version" ] || { echo "build_wheelhouse: $name is not in uv.lock" >&2; exit 2; }
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$name==$version"
done
ls .whl && du -sh .whl
