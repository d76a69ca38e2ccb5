"""Less noise: `effnet fit` and `effnet validate` raise none of the warnings a user cannot act on."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml
from effnet_run import debug_args

from effnet_lightning.cli import main

UNACTIONABLE = (  # what each warning says, to name it in a failure (the code never filters by text)
    "No seed found",  # Lightning's seed_everything() without a seed (seed_everything: true)
    "LeafSpec",  # torch's pytree deprecation, raised by Lightning's CombinedLoader
    "dirpath has changed",  # ModelCheckpoint state reloaded into another folder (validate/test/predict)
    "sync_dist",  # self.log of already-reduced values at epoch level under DDP
)


def test_fit_and_validate_raise_no_unactionable_warning(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative run folder, as configs give it: ModelCheckpoint realpaths its dirpath
    args = debug_args(
        cifar10_root,
        Path("runs"),
        "--seed_everything=true",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--model.scaling.phi=-4",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", *args]) == 0
        run = tmp_path / "runs" / "version_0"
        assert main(["validate", *args, "--ckpt_path=runs/version_0"]) == 0
    messages = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]
    assert not [m for m in messages if any(text in m for text in UNACTIONABLE)], messages
    seed = yaml.safe_load((run / "config.yaml").read_text())["seed_everything"]
    assert isinstance(seed, int) and not isinstance(seed, bool)  # `true` was drawn into a recorded seed


def test_lightning_still_raises_the_pytree_deprecation() -> None:
    """train/run.py ignores this FutureWarning by category and module only. When a Lightning release no longer
    raises it, this fails: then remove the filter (PYTREE_MODULE) from train/run.py."""
    from lightning.pytorch.utilities import CombinedLoader

    with pytest.warns(FutureWarning) as caught:
        CombinedLoader([[1, 2]])
    assert any(Path(w.filename).as_posix().endswith("lightning/pytorch/utilities/_pytree.py") for w in caught)


def test_every_run_draws_its_own_seed_and_launched_ranks_take_rank_0s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the seed was read back from Lightning's PL_GLOBAL_SEED, which the first run's seed_everything left
    in the environment, so every later run in the process (a study's arms, a notebook) got that same seed."""
    from lightning.pytorch import seed_everything

    from effnet_lightning.assembly.seed import drawn_seed

    for name in ("LOCAL_RANK", "WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EFFNET_DRAWN_SEED", "0")  # drawn_seed exports its own; removed again after the test
    first = drawn_seed()
    seed_everything(first)  # what the run does with it
    draws = {drawn_seed() for _ in range(3)}
    assert first not in draws and len(draws) == 3  # a 2**32 range: a repeat would be a defect, not chance
    last = drawn_seed()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning's DDP launcher started with rank 0's environment
    assert drawn_seed() == last
