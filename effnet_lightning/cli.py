"""The `effnet` command: picks the command's module by name and turns how it ended into the exit code; nothing
imports this.

Each command lives in its tier (`assembly.run` for LightningCLI's fit/validate/test/predict, `tools.*`, `study`)
and is imported only when named, so `effnet --help` starts without loading torch. A command's `main(argv)` raises
for a failure and returns None, or the exit code it decided itself (3 non-finite, 75 SIGTERM, 130 SIGINT);
every command goes through `errors.outcome`, the one place that turns an exception into an exit code.
"""

from __future__ import annotations

import sys

from effnet_lightning.console import console
from effnet_lightning.errors import EXIT_OK, EXIT_USER_ERROR, outcome

__all__ = ["dispatch", "main"]

USAGE = """usage: effnet <command> [options]

commands:
  fit          train (LightningCLI): effnet fit --config configs/b1_cifar.yaml
  validate     evaluate a checkpoint on the validation set (--ckpt_path)
  test         evaluate a checkpoint on the test set (--ckpt_path)
  predict      class probabilities from a checkpoint (--ckpt_path)
  cam          Grad-CAM grid: rows = images, columns = checkpoints (--ckpt_path X [--ckpt_path Y] --images ...
               or --config ... --split val --count 16)
  export       a checkpoint's network as safetensors + timm config.json (--ckpt_path X [--weights ema|raw] OUT)
  scale        print depth, width, resolution, params and MACs of scaled EfficientNets
  study        train one arm per scaling on one recipe: table7 (equal MACs), family, grid (alpha, beta, gamma)
  benchmark    measure train/inference img/s, peak memory and TFLOP/s (--vs-bare: framework vs plain loop)
  datamodules  list the datamodules a config can name by short class name, and where they come from
run 'effnet <command> --help' for a command's options"""

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    """Runs `effnet <argv>` and returns its exit code; the package's log messages reach the terminal meanwhile."""
    in_process = argv is not None  # called from Python (tests, notebooks) rather than as the `effnet` command
    with console():
        return dispatch(sys.argv[1:] if argv is None else argv, in_process)


def dispatch(argv: list[str], in_process: bool) -> int:
    """Runs the command `argv[0]` with the rest of `argv`, and returns the exit code of how it ended."""
    command = argv[0] if argv else "--help"
    if command in ("-h", "--help"):
        print(USAGE)
        return EXIT_OK
    if command == "scale":
        from effnet_lightning.tools.scale import main as scale_main

        return outcome(command, lambda: scale_main(argv[1:]))
    if command == "study":
        from effnet_lightning.study.main import main as study_main

        return outcome(command, lambda: study_main(argv[1:]))
    if command == "benchmark":
        from effnet_lightning.tools.benchmark import main as benchmark_main

        return outcome(command, lambda: benchmark_main(argv[1:]))
    if command == "cam":
        from effnet_lightning.tools.cam import main as cam_main

        return outcome(command, lambda: cam_main(argv[1:]))
    if command == "export":
        from effnet_lightning.tools.export import main as export_main

        return outcome(command, lambda: export_main(argv[1:]))
    if command == "datamodules":
        from effnet_lightning.assembly.plugins import main as datamodules_main

        return outcome(command, datamodules_main)
    if command in TRAINING_COMMANDS:
        from effnet_lightning.assembly.run import main as training_main

        return outcome(command, lambda: training_main(argv, in_process=in_process))
    print(
        f"effnet: error: unknown command {command!r}; "
        "choose one of fit, validate, test, predict, cam, export, scale, study, benchmark, datamodules",
        file=sys.stderr,
    )
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
