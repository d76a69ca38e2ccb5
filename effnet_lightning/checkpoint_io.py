"""The import path of `AtomicCheckpointIO` in the config.yaml of runs written before the package had layers
(`checkpoint_io: {class_path: effnet_lightning.checkpoint_io.AtomicCheckpointIO}`), so that such a run still
resumes with its own config: `effnet fit --config <run>/config.yaml --ckpt_path <run>`."""

from effnet_lightning.train.checkpoint_io import AtomicCheckpointIO

__all__ = ["AtomicCheckpointIO"]
