"""scripts/greedy_sensitivity.py on a small random model: no noise changes nothing, noise moves the model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from edgesmith.plugins.evaluation.throughput import build_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "greedy_sensitivity.py"


def run(model_dir: Path, scale: float) -> list[tuple[float, int]]:
    out = subprocess.run([sys.executable, str(SCRIPT), str(model_dir), "--scale", str(scale), "--draws", "2",
                          "--prompts", "4"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"original: accuracy \d+\.\d%, loops \d+\.\d%", out.stdout)
    draws = re.findall(r"draw \d: KL (\d+\.\d+) nats/token, .* (\d+) of 4 prompts changed outcome", out.stdout)
    assert len(draws) == 2, out.stdout
    return [(float(kl), int(changed)) for kl, changed in draws]


def test_no_noise_changes_nothing_and_noise_moves_the_model(tmp_path):
    model_dir = build_model(tmp_path / "model", hidden=64, layers=3, vocab=512)
    assert run(model_dir, 0.0) == [(0.0, 0), (0.0, 0)]
    assert all(kl > 0.01 for kl, _ in run(model_dir, 1.0))
