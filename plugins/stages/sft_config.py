"""Options of the ``sft`` stage (``sft.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import require_at_least_one

from .precision import check_precision

DEFAULT_ENVIRONMENTS = ["toolcall", "extraction", "reasoning"]


@dataclass
class SFTStageConfig:
    """Supervised fine-tuning on the environments' reference solutions (chat format).

    The loss covers the assistant turns only (the chat template's ``{% generation %}``
    span); ``tasks_per_environment`` train tasks are drawn from each environment, or the
    count ``environment_tasks`` names for it (``sft.environment_tasks={toolcall: 4000}``):
    an environment the model learns slowly can get more of the step budget.
    """

    environments: list[str] = field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    tasks_per_environment: int = 200
    environment_tasks: dict[str, int] = field(default_factory=dict)
    difficulty: int = 1
    max_steps: int = 150
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.0
    max_length: int = 512
    save_steps: int = 50
    precision: str = "fp32"
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision, "sft.precision")
        require_at_least_one(self, "sft", ("tasks_per_environment", "max_steps", "batch_size", "max_length", "save_steps"))
        if not self.learning_rate > 0:
            raise ConfigError("sft.learning_rate", self.learning_rate, "a positive number")
        for name, count in self.environment_tasks.items():
            if name not in self.environments:
                raise ConfigError(f"sft.environment_tasks.{name}", count,
                                  f"counts for environments in sft.environments: {', '.join(self.environments)}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ConfigError(f"sft.environment_tasks.{name}", count, "an integer >= 0")

    def tasks_for(self, environment: str) -> int:
        """How many train tasks SFT draws from ``environment``."""
        return self.environment_tasks.get(environment, self.tasks_per_environment)
