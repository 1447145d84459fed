"""Options of the ``sft`` stage (``sft.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgesmith.core.errors import ConfigError
from edgesmith.core.stage_options import require_at_least_one

DEFAULT_ENVIRONMENTS = ["toolcall", "extraction", "reasoning"]


@dataclass
class SFTStageConfig:
    """Supervised fine-tuning on the environments' reference solutions (chat format).

    The loss covers the assistant turns only (the chat template's ``{% generation %}``
    span); ``tasks_per_environment`` train tasks are drawn from each environment.
    """

    environments: list[str] = field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    tasks_per_environment: int = 200
    difficulty: int = 1
    max_steps: int = 150
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.0
    max_length: int = 512
    save_steps: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        require_at_least_one(self, "sft", ("tasks_per_environment", "max_steps", "batch_size", "max_length", "save_steps"))
        if not self.learning_rate > 0:
            raise ConfigError("sft.learning_rate", self.learning_rate, "a positive number")
