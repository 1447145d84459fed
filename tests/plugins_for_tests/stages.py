"""Test-only stages for the pipeline runner: produce, count (resumable), boom (fails)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgesmith.core.errors import ConfigError
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.stage import Artifact, Stage


@dataclass
class ProduceOptions:
    content: str = "hello"


class Produce(Stage):
    """Writes ``content`` to a file."""

    name = "produce"
    options_class = ProduceOptions

    def run(self, ctx):
        path = ctx.out_dir / "data.txt"
        path.write_text(self.options.content)
        with open(ctx.out_dir.parent / "runs.log", "a") as f:
            f.write(f"produce {self.options.content}\n")
        return Artifact("dataset", str(path), {"content": self.options.content})


@dataclass
class CountOptions:
    steps: int = 5
    fail_at: int = -1  # raise before this step (simulates an interruption); -1: never

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError("count.steps", self.steps, "a positive integer")


class Count(Stage):
    """Counts to ``steps``, checkpointing after each step; resumes from the last checkpoint."""

    name = "count"
    options_class = CountOptions

    def run(self, ctx):
        source = ctx.require("dataset")
        ckpt = ctx.out_dir / "checkpoint.json"
        step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
        while step < self.options.steps:
            if step == self.options.fail_at:
                raise RuntimeError(f"interrupted at step {step}")
            step += 1
            with open(ctx.out_dir / "executed.log", "a") as f:
                f.write(f"{step}\n")
            ckpt.write_text(json.dumps({"step": step}))
            ctx.log_metrics(step=step)
        return Artifact("model", str(ctx.out_dir), {"steps": step, "source": source.path})


class Boom(Stage):
    """Always fails."""

    name = "boom"

    def run(self, ctx):
        raise ValueError("deliberate failure")


@hookimpl
def edgesmith_stages():
    return {"produce": Produce, "count": Count, "boom": Boom}
