"""Options of an architecture search: the Hydra config group ``search`` as typed dataclasses.

``conf/search/<preset>.yaml`` fills :class:`SearchConfig`; the ``search`` command and the
``search`` stage both declare it as their options, the ``search`` group's section
(``options_group``), validated through the one options contract
(:func:`edgesmith.core.options.build_options`), so a typo names the key and the accepted ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import PluginChoice

OBJECTIVES = ("proxy", "decode_ms", "peak_rss_mb", "prefill_ms")
LAYOUTS = ("pattern", "free")
PLACEMENTS = ("spread", "start", "end")
SAMPLERS = ("nsga2", "nsga3", "tpe", "random", "gp")
CHOOSE_RULES = ("best_quality", "fastest", "smallest")
CHOOSE_FALLBACKS = ("none", "nearest")
REPORT_MODES = ("once", "every_worker")


@dataclass
class SpaceConfig:
    """What a candidate may look like. Lists of numbers are the choices offered to Optuna.

    num_layers / num_attention: ``[min, max]`` integer ranges; every other list is a set of
    categorical choices. ``operators`` maps each allowed operator (any registered one,
    third-party included) to ``{option: [choices]}``; exactly the operators named are
    searched, in that order; null or an empty mapping: every registered operator with
    default options. An option's value is shared by all layers of that operator.
    ``layout=pattern``: ``num_attention`` layers use one operator of ``attention_operators``
    placed by ``placements`` (spread: evenly through the stack, as in LFM2; start; end), the
    others one of the remaining operators. ``layout=free``: each layer slot picks any operator.
    """

    num_layers: list[int] = field(default_factory=lambda: [2, 4])
    hidden_size: list[int] = field(default_factory=lambda: [64, 128])
    ffn_ratio: list[float] = field(default_factory=lambda: [2.0, 3.0])
    num_attention_heads: list[int] = field(default_factory=lambda: [2, 4])
    num_key_value_heads: list[int] = field(default_factory=lambda: [1, 2])
    vocab_size: list[int] = field(default_factory=lambda: [512])
    tie_word_embeddings: list[bool] = field(default_factory=lambda: [True])
    max_position_embeddings: int = 4096
    layout: str = "pattern"
    # null, not a mapping: OmegaConf merges a configured mapping *into* a mapping default,
    # so a default {short_conv, gqa} could never be narrowed (or emptied) by a config.
    operators: Optional[dict[str, Any]] = None
    attention_operators: list[str] = field(default_factory=lambda: ["gqa", "swa"])
    num_attention: list[int] = field(default_factory=lambda: [1, 2])
    placements: list[str] = field(default_factory=lambda: ["spread", "end"])
    # one RMSNorm epsilon for every candidate (null: the model's default, 1e-5); 1e-6 lets
    # gated_deltanet + gqa candidates run in llama.cpp as qwen3next, whose L2 norm uses it
    norm_eps: Optional[float] = None


@dataclass
class ConstraintsConfig:
    """Feasibility limits. A trial violating any is infeasible (Optuna constraint > 0).

    Parameter counts include the embedding once when tied. ``peak_memory_mb`` bounds the
    candidate's own measured peak RSS (above the measuring process's interpreter + torch
    baseline; before measuring, the analytic weights + decode state); the latency budgets
    are optional.
    """

    min_params: int = 0
    max_params: Optional[int] = None
    max_embedding_share: float = 1.0
    peak_memory_mb: Optional[float] = None
    decode_ms: Optional[float] = None
    prefill_ms: Optional[float] = None


@dataclass
class WorkersConfig:
    """Farm settings: heartbeats let a live worker retry the trial of a dead one (RDB storages).

    ``report``: ``once`` (the study's report -- trials.csv, Pareto table, plots, summary, the
    chosen architecture -- is written by one worker, the first to see the study finished with
    no trial running, into its own run directory; the others say which worker and where) or
    ``every_worker`` (each worker writes its own copy). The ``search`` stage of a pipeline always
    writes its own: its artifact is the chosen architecture in its stage directory.
    """

    heartbeat_interval_s: int = 5
    grace_period_s: int = 15
    max_retry: int = 2
    poll_s: float = 1.0
    wait_timeout_s: float = 600.0
    check_fingerprint: bool = True
    fingerprint_keys: list[str] = field(default_factory=lambda: ["cpu_model", "logical_cores", "torch"])
    report: str = "once"


@dataclass
class ChooseConfig:
    """How the exported architecture is chosen among feasible finished trials.

    Every rule first keeps trials within the budgets (``decode_ms``, ``peak_rss_mb``,
    ``prefill_ms``; null: the constraint of the same name, or no limit); then
    ``best_quality`` takes the lowest proxy value, ``fastest`` the lowest decode latency,
    ``smallest`` the lowest peak memory; ties go to the lower decode latency.
    ``fallback`` when no feasible trial is within the budgets: ``none`` (nothing is chosen;
    the search stage fails) or ``nearest`` (the feasible trial whose worst measurement is the
    smallest multiple of its budget; a loaded machine then still yields an architecture, and
    the reason says the budget was missed).
    """

    rule: str = "best_quality"
    decode_ms: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    prefill_ms: Optional[float] = None
    fallback: str = "none"
    model_name: str = "searched"


def load_preset(path: Any, seed: int = 0) -> Any:
    """A ``conf/search/<preset>.yaml`` read on its own, outside a composed Hydra config.

    The presets take the run's top-level seed (``seed: ${seed}``); read alone there is no top
    level, so ``seed`` stands in for it. Returns a resolved ``DictConfig``.
    """
    from omegaconf import OmegaConf

    root = OmegaConf.create({"seed": seed, "search": OmegaConf.load(path)})
    return OmegaConf.create(OmegaConf.to_container(root.search, resolve=True))


@dataclass
class SearchConfig:
    """The ``search`` config group: space, constraints, study, profiler, proxy, farm, export.

    ``storage``: null (a SQLite file ``study.db`` in the run directory), ``sqlite:///PATH``,
    ``journal:///PATH`` (an Optuna journal file), any SQLAlchemy URL
    (``postgresql://...``, ``mysql+pymysql://...``); ``grpc://`` is refused (not supported).
    Workers sharing ``storage`` and ``study_name`` work on one study; only the RDB
    storages (SQLite and SQLAlchemy URLs) retry a dead worker's trial (heartbeats), the
    journal does not. ``n_trials`` counts evaluated trials of the whole study (measured,
    or pruned by the proxy; candidates rejected by the analytic cost model are not
    counted), so a re-run resumes with the remainder. ``corpus_documents``: how many
    documents of the built-in corpus the ``short_train`` proxy trains on when the search
    runs from the command or the stage (``search.proxy.options.tokenizer`` says how they
    are tokenized: ``bpe``, the pipeline's tokenizer at each candidate's vocabulary size, or
    ``bytes``).
    """

    name: str = "tiny"
    study_name: str = "edgesmith-search"
    storage: Optional[str] = None
    n_trials: int = 4
    timeout_s: Optional[float] = None
    objectives: list[str] = field(default_factory=lambda: ["proxy", "decode_ms", "peak_rss_mb"])
    sampler: str = "nsga2"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    max_infeasible: int = 20
    pruning: bool = True
    pruning_startup_trials: int = 3
    space: SpaceConfig = field(default_factory=SpaceConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    profiler: PluginChoice = field(default_factory=lambda: PluginChoice("local_cpu", {}))
    proxy: PluginChoice = field(default_factory=lambda: PluginChoice("zero_cost", {}))
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    choose: ChooseConfig = field(default_factory=ChooseConfig)
    plots: bool = True
    corpus_documents: int = 300

    def __post_init__(self) -> None:
        check_search_config(self)


def _range(key: str, value: list[int]) -> None:
    if len(value) != 2 or not all(isinstance(v, int) for v in value) or not 0 <= value[0] <= value[1]:
        raise ConfigError(key, value, "[min, max] with 0 <= min <= max (integers)")


def _choices(key: str, value: list, kind: type) -> None:
    if not value or not all(isinstance(v, kind) and not (kind is int and isinstance(v, bool)) for v in value):
        raise ConfigError(key, value, f"a non-empty list of {kind.__name__} choices")


def check_search_config(cfg: SearchConfig) -> None:
    """Value checks that need no plugin registry (operator names are checked by the space)."""
    s = cfg.space
    _range("search.space.num_layers", list(s.num_layers))
    if s.num_layers[0] < 1:
        raise ConfigError("search.space.num_layers", list(s.num_layers), "[min, max] with min >= 1")
    _range("search.space.num_attention", list(s.num_attention))
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size"):
        _choices(f"search.space.{key}", list(getattr(s, key)), int)
        if min(getattr(s, key)) <= 0:
            raise ConfigError(f"search.space.{key}", list(getattr(s, key)), "positive integers")
    if not s.ffn_ratio or not all(isinstance(v, (int, float)) and v > 0 for v in s.ffn_ratio):
        raise ConfigError("search.space.ffn_ratio", list(s.ffn_ratio), "a non-empty list of positive numbers")
    _choices("search.space.tie_word_embeddings", list(s.tie_word_embeddings), bool)
    for h in s.hidden_size:
        for n in s.num_attention_heads:
            if h % n:
                raise ConfigError("search.space.hidden_size", list(s.hidden_size),
                                  f"sizes divisible by every choice of search.space.num_attention_heads "
                                  f"{list(s.num_attention_heads)}", detail=f"{h} % {n} != 0")
    if s.layout not in LAYOUTS:
        raise ConfigError("search.space.layout", s.layout, " or ".join(LAYOUTS))
    bad = [p for p in s.placements if p not in PLACEMENTS]
    if not s.placements or bad:
        raise ConfigError("search.space.placements", list(s.placements), f"a non-empty subset of {list(PLACEMENTS)}")
    if s.operators is not None and not isinstance(s.operators, dict):
        raise ConfigError("search.space.operators", s.operators,
                          "a mapping operator -> {option: [choices]} (null or {}: every registered operator)")
    for op, opts in (s.operators or {}).items():
        if opts is None:
            continue
        if not isinstance(opts, dict):
            raise ConfigError(f"search.space.operators.{op}", opts, "a mapping option -> [choices]")
        for opt, choices in opts.items():
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"search.space.operators.{op}.{opt}", choices, "a non-empty list of choices")
    if cfg.corpus_documents < 1:
        raise ConfigError("search.corpus_documents", cfg.corpus_documents, "an integer >= 1")
    if cfg.n_trials < 1:
        raise ConfigError("search.n_trials", cfg.n_trials, "an integer >= 1")
    bad = [o for o in cfg.objectives if o not in OBJECTIVES]
    if not cfg.objectives or bad or len(set(cfg.objectives)) != len(cfg.objectives):
        raise ConfigError("search.objectives", list(cfg.objectives), f"distinct names from {list(OBJECTIVES)}")
    if cfg.sampler not in SAMPLERS:
        raise ConfigError("search.sampler", cfg.sampler, f"one of {', '.join(SAMPLERS)}")
    if cfg.choose.rule not in CHOOSE_RULES:
        raise ConfigError("search.choose.rule", cfg.choose.rule, f"one of {', '.join(CHOOSE_RULES)}")
    if cfg.choose.fallback not in CHOOSE_FALLBACKS:
        raise ConfigError("search.choose.fallback", cfg.choose.fallback, f"one of {', '.join(CHOOSE_FALLBACKS)}")
    if cfg.max_infeasible < 1:
        raise ConfigError("search.max_infeasible", cfg.max_infeasible, "an integer >= 1")
    c = cfg.constraints
    if c.max_params is not None and c.max_params < c.min_params:
        raise ConfigError("search.constraints.max_params", c.max_params, f">= search.constraints.min_params={c.min_params}")
    if not 0 < c.max_embedding_share <= 1:
        raise ConfigError("search.constraints.max_embedding_share", c.max_embedding_share, "a share in (0, 1]")
    w = cfg.workers
    if w.heartbeat_interval_s < 1 or w.grace_period_s <= w.heartbeat_interval_s:
        raise ConfigError("search.workers.grace_period_s", w.grace_period_s,
                          "an integer > search.workers.heartbeat_interval_s (itself an integer >= 1)")
    if w.report not in REPORT_MODES:
        raise ConfigError("search.workers.report", w.report, " or ".join(REPORT_MODES))
    if not cfg.profiler.name:
        raise ConfigError("search.profiler.name", cfg.profiler.name, "a registered profiler name")
    if not cfg.proxy.name:
        raise ConfigError("search.proxy.name", cfg.proxy.name, "a registered quality proxy name")
