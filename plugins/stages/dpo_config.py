"""Options of the ``dpo`` stage (``dpo.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from edgesmith.core.errors import ConfigError
from edgesmith.core.options import PluginRef, require_at_least_one

from .corrections import CORRECTIONS, CORRECTIONS_AT
from .loop_branches import BRANCH_AT, BRANCH_CHOSEN, BRANCH_FROM
from .parting import REJECTED_CUT
from .precision import check_precision
from .preferences import REJECTED
from .sft_config import DEFAULT_ENVIRONMENTS

AGGREGATIONS = ("weighted_sum", "rank_average")
#: the losses of TRL 1.16's DPOTrainer
LOSS_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
              "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")


def default_jury() -> list[PluginRef]:
    # Correctness first, loops penalized as hard as a wrong answer, length only breaks ties.
    return [PluginRef("verifier", 1.0), PluginRef("loop", 1.0), PluginRef("length", 0.1)]


@dataclass
class DPOStageConfig:
    """On-policy DPO rounds: sample, judge, pair best vs worst, train with TRL's DPOTrainer.

    Each round draws ``prompts_per_environment`` fresh train prompts per environment, has
    the current policy write ``samples`` completions at ``temperature`` plus one greedy
    completion, and lets the jury score them. ``loss_type`` is any DPOTrainer loss;
    ``sigmoid_norm`` (default) is DPO on the per-token average log-ratio (length-normalized).
    ``steps_per_round`` = 0 means ``epochs`` passes over the round's pairs. A prompt is a tie (no pair)
    when its best and worst candidate differ by less than ``min_margin``; with
    ``reference_chosen`` the task's reference solution is chosen when it beats every sample
    by ``min_margin`` (with ``reference_wins_ties``, also when no sample scores above it);
    ``rejected`` (``worst``, ``each`` or ``none``) picks one rejected completion per prompt,
    pairs every one below the margin, or makes no whole-completion pairs (only loop-branch pairs);
    ``rejected_cut`` (``none`` or ``parting``) keeps a whole-completion pair's rejected side
    whole, or cuts it to the one token where it first parts from the chosen side (its first
    mistake; the shared start joins the prompt, see :mod:`.parting`); ``loop_branches`` > 0 adds, for each looping
    candidate, a pair at its first repeat: that many sampled continuations, the best against
    the repeat (see :mod:`edgesmith.plugins.stages.preferences` and ``loop_branches``);
    ``branch_chosen`` (``step``, ``rest`` or ``decision``) cuts that continuation to one step
    (the repeat's length), keeps all of it, or pairs only the one token where it parts from the
    repeat (the tokens before it join the prompt); ``branch_from`` (``loops`` or ``repeats``) branches only looping
    candidates, or also those that re-write a step once (a retry) and still end; ``branch_at``
    (``first_repeat`` or ``second_repeat``) branches before the first re-written step, or
    after it, where a loop goes round a second time;
    ``branch_correct_only``: a branch pair's chosen continuation must end with a verified right
    answer (otherwise the jury's best may be a wrong answer that merely ends);
    ``corrections`` (``none``, ``decision`` or ``rest``) adds, for every candidate whose first
    mistake the environment's expert can name, a pair at that mistake: the expert's next token
    (or its whole remaining trace) against the candidate's (see :mod:`.corrections`);
    ``corrections_at`` (``first`` or ``every``): at the first mistake only, or also at each
    later one the expert can go on from (after a retried arm on the search task).

    ``sft_weight`` adds the chosen completions' mean token NLL to the loss with that weight
    (0 turns it off). Without it the preference loss is content to lower both likelihoods
    as long as the rejected one falls faster: in run base1 the chosen traces' log-likelihood
    fell from -3.5 to -44 nats over three rounds and reasoning accuracy from 37.5% to 11%.
    """

    environments: list[str] = field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    prompts_per_environment: int = 16
    difficulty: int = 1
    rounds: int = 2
    samples: int = 5
    temperature: float = 1.0
    max_new_tokens: int = 128
    judges: list[PluginRef] = field(default_factory=default_jury)
    aggregation: str = "weighted_sum"
    min_margin: float = 0.5
    reference_chosen: bool = True
    reference_wins_ties: bool = False
    rejected: str = "worst"
    rejected_cut: str = "none"
    loop_branches: int = 0
    branch_chosen: str = "step"
    branch_from: str = "loops"
    branch_at: str = "first_repeat"
    branch_correct_only: bool = False
    corrections: str = "none"
    corrections_at: str = "first"
    loss_type: str = "sigmoid_norm"
    beta: float = 0.1
    sft_weight: float = 0.0
    learning_rate: float = 5e-5
    batch_size: int = 4
    steps_per_round: int = 0
    epochs: float = 1.0
    max_length: int = 512
    save_steps: int = 50
    precision: str = "fp32"
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    # the reference's log-probs once per round, not once per step (single-process runs only)
    precompute_reference: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision, "dpo.precision")
        require_at_least_one(self, "dpo", (
            "prompts_per_environment", "rounds", "samples", "max_new_tokens", "batch_size", "max_length", "save_steps"))
        if self.steps_per_round < 0:
            raise ConfigError("dpo.steps_per_round", self.steps_per_round, "an integer >= 0 (0: dpo.epochs passes)")
        if not self.epochs > 0:
            raise ConfigError("dpo.epochs", self.epochs, "a positive number of passes over a round's pairs")
        if not self.temperature > 0:
            raise ConfigError("dpo.temperature", self.temperature, "a positive number (the greedy sample is added "
                                                                   "anyway)")
        if not self.min_margin >= 0:
            raise ConfigError("dpo.min_margin", self.min_margin, "a number >= 0 (0: any difference makes a pair)")
        if not self.sft_weight >= 0:
            raise ConfigError("dpo.sft_weight", self.sft_weight, "a number >= 0 (0: preference loss only)")
        if self.loop_branches < 0:
            raise ConfigError("dpo.loop_branches", self.loop_branches, "an integer >= 0 (0: no branch pairs)")
        if self.branch_chosen not in BRANCH_CHOSEN:
            raise ConfigError("dpo.branch_chosen", self.branch_chosen, ", ".join(BRANCH_CHOSEN))
        if self.branch_from not in BRANCH_FROM:
            raise ConfigError("dpo.branch_from", self.branch_from, ", ".join(BRANCH_FROM))
        if self.branch_at not in BRANCH_AT:
            raise ConfigError("dpo.branch_at", self.branch_at, ", ".join(BRANCH_AT))
        if self.rejected not in REJECTED:
            raise ConfigError("dpo.rejected", self.rejected, ", ".join(REJECTED))
        if self.rejected_cut not in REJECTED_CUT:
            raise ConfigError("dpo.rejected_cut", self.rejected_cut, ", ".join(REJECTED_CUT))
        if self.corrections not in CORRECTIONS:
            raise ConfigError("dpo.corrections", self.corrections, ", ".join(CORRECTIONS))
        if self.corrections_at not in CORRECTIONS_AT:
            raise ConfigError("dpo.corrections_at", self.corrections_at, ", ".join(CORRECTIONS_AT))
        if self.rejected == "none" and self.loop_branches < 1 and self.corrections == "none":
            raise ConfigError("dpo.rejected", self.rejected, "worst or each, or none with dpo.loop_branches >= 1 "
                              "or dpo.corrections=decision|rest",
                              "without whole-completion pairs, only loop branches or corrections give pairs")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError("dpo.aggregation", self.aggregation, ", ".join(AGGREGATIONS))
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError("dpo.loss_type", self.loss_type, ", ".join(LOSS_TYPES))
        if not self.judges:
            raise ConfigError("dpo.judges", self.judges, "at least one judge")
        if not self.beta > 0 or not self.learning_rate > 0:
            raise ConfigError("dpo.beta" if not self.beta > 0 else "dpo.learning_rate",
                              self.beta if not self.beta > 0 else self.learning_rate, "a positive number")
