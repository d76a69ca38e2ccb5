"""What `effnet scale` loads: its help without torch, its table without Lightning.

Which modules a command imports shows only in a fresh interpreter (pytest has loaded everything already), so this
is the one test here that starts a process; benchmarks/startup.py measures the seconds it saves.
"""

import subprocess
import sys

CHECK = """
import sys
from effnet_lightning.cli import main

def loaded():
    heavy = ("torch", "timm", "torchvision", "lightning", "albumentations")
    return sorted(name for name in heavy if name in sys.modules)

assert main(["scale", "--help"]) == 0  # returns its code: no SystemExit
print("help:", loaded())
main(["scale", "--phi", "-2", "--num-classes", "10"])
print("table:", loaded())
"""


def test_scale_help_needs_no_torch_and_its_table_no_lightning() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "help: []" in lines  # argparse and the scaling arithmetic only
    assert "table: ['timm', 'torch', 'torchvision']" in lines  # timm's model for the MACs and memory columns
    assert any(line.split()[:2] == ["phi-2", "-2"] for line in lines)
