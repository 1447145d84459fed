"""Options of the ``rl`` stage (``rl.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from edgesmith.core.errors import ConfigError
from edgesmith.core.options import PluginRef, require_at_least_one

from .precision import check_precision
from .sft_config import DEFAULT_ENVIRONMENTS

COLD_START_MODES = ("off", "report", "auto")


def default_rewards() -> list[PluginRef]:
    # Each reward's own options have their defaults in its options dataclass, not here.
    return [PluginRef("verifier", 1.0), PluginRef("repetition", 1.0), PluginRef("toolcall_format", 0.25)]


@dataclass
class RLStageConfig:
    """RL with verifiable rewards through TRL's GRPOTrainer, with a cold-start check.

    Each step takes ``prompts_per_step`` prompts and samples ``num_generations``
    completions of each at ``temperature``. Cold start: after ``cold_start_check_steps``
    steps, an environment whose share of prompt groups with all-equal verifier rewards is at
    least ``cold_start_flat_share`` and whose mean verifier reward is at most
    ``cold_start_max_reward`` is reported as "missing SFT data"; with ``cold_start=auto``
    the stage then builds SFT samples for it (verified samples at
    ``cold_start_temperature``, else the environment's reference solutions), re-runs SFT
    from the current checkpoint and resumes RL.

    ``python_tool``: the environment's rollout tools (:meth:`Environment.rollout_tools
    <edgesmith.core.environment.Environment.rollout_tools>`: the ``python`` environment's
    sandbox as ``run_python``) become GRPO tools (multi-turn rollouts: the policy's calls run,
    their output comes back as a ``tool`` message, up to ``max_tool_calls`` times); GRPO
    renders one tool list for all prompts, so this needs one environment, one that offers
    rollout tools (``environments=[python]``).
    """

    environments: list[str] = field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    prompts_per_environment: int = 32
    difficulty: int = 1
    max_steps: int = 30
    prompts_per_step: int = 2
    num_generations: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 96
    rewards: list[PluginRef] = field(default_factory=default_rewards)
    python_tool: bool = False
    max_tool_calls: int = 2
    learning_rate: float = 2e-5
    beta: float = 0.0
    save_steps: int = 10
    precision: str = "fp32"
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    seed: int = 0
    cold_start: str = "report"
    cold_start_check_steps: int = 4
    cold_start_flat_share: float = 0.9
    cold_start_max_reward: float = 0.05
    cold_start_tasks: int = 32
    cold_start_samples: int = 4
    cold_start_temperature: float = 1.2
    cold_start_sft_steps: int = 30
    cold_start_sft_learning_rate: float = 1e-3
    cold_start_sft_max_length: int = 2048

    def __post_init__(self) -> None:
        check_precision(self.precision, "rl.precision")
        require_at_least_one(self, "rl", (
            "prompts_per_environment", "max_steps", "prompts_per_step", "max_new_tokens", "save_steps",
            "cold_start_check_steps", "cold_start_tasks", "cold_start_samples", "cold_start_sft_steps"))
        if self.num_generations < 2:
            raise ConfigError("rl.num_generations", self.num_generations,
                              "an integer >= 2 (GRPO compares completions of the same prompt)")
        if not self.temperature > 0:
            raise ConfigError("rl.temperature", self.temperature, "a positive number")
        if self.cold_start not in COLD_START_MODES:
            raise ConfigError("rl.cold_start", self.cold_start, ", ".join(COLD_START_MODES))
        if not 0 < self.cold_start_flat_share <= 1:
            raise ConfigError("rl.cold_start_flat_share", self.cold_start_flat_share, "a number in (0, 1]")
        if self.python_tool and len(self.environments) != 1:
            raise ConfigError("rl.python_tool", True, "only with one environment that offers rollout tools, "
                                                      "e.g. rl.environments=[python]",
                              detail=f"got environments {list(self.environments)}; GRPO shows one tool list "
                                     "to every prompt")
        if self.max_tool_calls < 1:
            raise ConfigError("rl.max_tool_calls", self.max_tool_calls, "an integer >= 1")
        if not self.rewards:
            raise ConfigError("rl.rewards", self.rewards, "at least one reward")
