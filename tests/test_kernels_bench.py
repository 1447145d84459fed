"""The ``kernels`` benchmark: its GPU requirement, options, and the whole grid on tiny shapes.

The GPU timing itself (``triton.testing.do_bench``) needs CUDA; here the same grid runs on
CPU in Triton's interpreter with a wall-clock timer, which exercises the workloads, the
forward and forward+backward closures, the Triton-vs-torch check, the table, the JSON and
the PNG. Speed numbers from that run mean nothing and are not asserted on.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from edgesmith.core.errors import ConfigError  # noqa: E402
from edgesmith.core.plugin_manager import get_plugin_manager  # noqa: E402
from edgesmith.plugins.benchmarks import kernels_speed as ks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _wall_ms(fn, opts) -> float:
    fn()                                            # warm-up (and kernel build)
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def test_registered_as_kernels():
    benchmark = get_plugin_manager().get("benchmark", "kernels")
    assert benchmark.function is ks.run_kernel_speed and benchmark.options_class is ks.KernelSpeedOptions


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no GPU is visible")
def test_cli_says_it_needs_a_gpu(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgesmith.core.cli", "bench", "bench=kernels",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert "bench=kernels needs a CUDA GPU" in proc.stderr + proc.stdout


def test_options_are_validated():
    with pytest.raises(ConfigError, match=r"kernels\.modes"):
        ks.KernelSpeedOptions(modes=["bwd"])
    with pytest.raises(ConfigError, match=r"kernels\.seq_lens"):
        ks.KernelSpeedOptions(seq_lens=[0])
    with pytest.raises(ConfigError, match=r"kernels\.head_dim"):
        ks.KernelSpeedOptions(head_dim=512)


@pytest.mark.slow
def test_grid_runs_end_to_end_on_tiny_shapes(tmp_path):
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    opts = ks.KernelSpeedOptions(batch_sizes=[1], seq_lens=[20], heads=2, head_dim=16, conv_hidden=24,
                                 window=8, chunk_size=16, compare_fla=True)
    result = ks.run_grid(opts, tmp_path, device, _wall_ms)
    saved = json.loads((tmp_path / "kernels_speed.json").read_text())
    assert (tmp_path / "kernels_speed.png").stat().st_size > 0
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert {(r["kernel"], r["mode"]) for r in saved["rows"]} == {(k, m) for k in ks.KERNELS for m in ks.MODES}
    for row in saved["rows"]:
        assert row["ms"]["triton"] > 0 and row["ms"]["torch"] > 0
        assert row["speedup_vs_torch"] == pytest.approx(row["ms"]["torch"] / row["ms"]["triton"])
        assert row["max_rel_err_vs_torch"] < 4e-2, row        # bf16 kernel vs reference (test tolerance)
        unit = "TB/s" if row["kernel"] == "short_conv" else "TFLOP/s"
        assert row["achieved"]["unit"] == unit and row["achieved"]["triton"] > 0
        if row["kernel"] in ("linear_attn", "gated_delta") and "fla" not in row["ms"]:
            assert "not importable" in row["notes"]["fla"]    # fla absent: said so, not silently skipped
    assert set(saved["goals"]["per_kernel"]) == set(ks.KERNELS)
    assert len(saved["goals"]["summary"]) == len(ks.KERNELS)


def test_gpu_check_script_is_present_and_executable():
    script = REPO / "scripts" / "gpu_check.sh"
    assert script.exists() and os.access(script, os.X_OK)
    text = script.read_text()
    assert "tests/test_kernels_triton.py" in text and "kernels_speed" in text
