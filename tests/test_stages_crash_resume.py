"""A training subprocess SIGKILLed while writing a checkpoint: the rerun resumes from the newest
complete checkpoint and keeps the partial one as ``incomplete-checkpoint-N`` (every stage)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from edgesmith.core.pipeline import run_pipeline
from edgesmith.plugins.stages import model_io
from edgesmith.plugins.stages.checkpoints import checkpoint_problem, newest_complete_checkpoint
from stages_support import base_model, registered_test_plugins, run_config

pytestmark = pytest.mark.slow  # training subprocesses killed and rerun

torch.set_num_threads(1)
DRIVER = Path(__file__).with_name("crash_during_save.py")


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


def _crash(cfg, run_dir: Path, step: int, where: str) -> None:
    config = run_dir.parent / "crash.yaml"
    OmegaConf.save(cfg, config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "1")}
    proc = subprocess.run([sys.executable, str(DRIVER), str(config), str(run_dir), str(step), where],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == -9, proc.stderr[-3000:]  # died of SIGKILL, not of an error


# stage, its checkpoint directory in the run, its options, the file being written when killed
CASES = [
    ("pretrain", "pretrain/checkpoints", {"max_steps": 3, "save_steps": 1}, "weights"),
    ("sft", "sft/checkpoints", {"max_steps": 3, "save_steps": 1}, "optimizer"),
    ("dpo", "dpo/round_0/checkpoints", {"steps_per_round": 3, "save_steps": 1, "batch_size": 1}, "weights"),
    ("rl", "rl/phase_0/checkpoints", {"max_steps": 3, "save_steps": 1, "cold_start": "off"}, "optimizer"),
]


@pytest.mark.parametrize("stage,checkpoints,options,where", CASES, ids=[c[0] for c in CASES])
def test_a_kill_during_a_save_resumes_from_the_last_complete_checkpoint(tmp_path, tmp_path_factory, manager,
                                                                        stage, checkpoints, options, where):
    init = {} if stage == "pretrain" else {"init_from": str(base_model(tmp_path_factory))}
    cfg = run_config(tmp_path, [stage], **init, **{stage: options})
    run_dir = tmp_path / "run"
    _crash(cfg, run_dir, step=2, where=where)
    ckpts = run_dir / checkpoints
    assert checkpoint_problem(ckpts / "checkpoint-1") is None
    problem = checkpoint_problem(ckpts / "checkpoint-2")
    assert problem and "trainer_state.json" in problem  # cut mid-save: the state file never came

    artifacts = run_pipeline(cfg, run_dir, manager)
    assert model_io.is_finished_model_dir(artifacts[stage].path)
    kept = ckpts / "incomplete-checkpoint-2"
    cut = kept / ("model.safetensors" if where == "weights" else "optimizer.pt")
    assert cut.is_file() and cut.stat().st_size > 0  # the partial save is kept, not deleted
    assert checkpoint_problem(ckpts / "checkpoint-3") is None
    assert json.loads((ckpts / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
    metrics_dir = run_dir / stage
    records = [json.loads(line) for line in (metrics_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["resumed_from"][-12:] for r in records if r.get("event") == "resume"] == ["checkpoint-1"]
    assert [Path(r["kept_as"]).name for r in records if r.get("event") == "incomplete_checkpoint"] == [kept.name]


def test_every_kind_of_cut_file_is_recognised(tmp_path, tmp_path_factory):
    """A complete checkpoint (the base model's last one) stays complete only while every file is whole."""
    source = base_model(tmp_path_factory).parent / "checkpoints"
    found, _ = newest_complete_checkpoint(source)
    assert found is not None
    for name, expect in [("model.safetensors", "model.safetensors"), ("optimizer.pt", "optimizer.pt"),
                         ("trainer_state.json", "trainer_state.json"), ("rng_state.pth", "rng_state.pth")]:
        copy = tmp_path / name / "checkpoint-4"
        shutil.copytree(found, copy)
        data = (copy / name).read_bytes()
        (copy / name).write_bytes(data[: len(data) // 2])
        assert expect in (checkpoint_problem(copy) or ""), name
        # the only candidate is set aside, so there is nothing to resume from
        found_here, kept = newest_complete_checkpoint(copy.parent)
        assert found_here is None and [p.name for p, _ in kept] == ["incomplete-checkpoint-4"]
        assert expect in kept[0][1]
        assert not copy.exists()
