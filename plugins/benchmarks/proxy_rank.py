"""Benchmark ``proxy``: does the search's quality proxy rank candidates like real training does?

It draws ``candidates`` distinct feasible candidates from a search preset's space (``main``
by default), computes the preset's proxy for each (``short_train``: bits per byte after a
short training with the pipeline's BPE at the candidate's vocabulary), then trains each with
the pipeline's own recipe (the ``pretrain``, ``sft`` and ``eval`` sections of
``conf/run.yaml``, scaled by this benchmark's overrides) and measures:

- the greedy task accuracy of the final model, averaged over the evaluated environments;
- the pretrained model's bits per byte on the proxy's held-out documents (a denser signal
  than accuracy at small scales, in the proxy's own unit).

It prints Spearman's rank correlation of the proxy with each (sign: +1 = the proxy orders
the candidates exactly as training does; it is computed against ``-accuracy``, since a
lower proxy should mean a higher accuracy). Writes ``proxy_rank.json`` and ``proxy_rank.png``.

A quick look: ``edgesmith bench bench=proxy +proxy.candidates=3 +proxy.pretrain={max_steps:20}``;
the full default run trains ``candidates`` models at the main job's scale (~15 min each on 2 cores).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

import edgesmith.conf
from rich.table import Table

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import build_options, require_at_least_one

SECTION = "proxy"
CONF_DIR = Path(edgesmith.conf.__file__).parent


@dataclass
class ProxyRankOptions:
    """Options of ``bench=proxy`` (section ``proxy``).

    preset: the search preset (``conf/search/<preset>.yaml``) whose space, constraints and
    proxy are ranked; search: overrides merged onto it (e.g. ``{corpus_documents: 300}``).
    candidates: distinct feasible candidates drawn at random (seed) from the space.
    recipe: the config file (``conf/<recipe>.yaml``) whose stage sections are the training
    recipe; pretrain / sft / eval: overrides merged onto those sections (the scale).
    """

    preset: str = "main"
    search: dict[str, Any] = field(default_factory=dict)
    candidates: int = 6
    seed: int = 0
    recipe: str = "run"
    pretrain: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_at_least_one(self, SECTION, ("candidates",))
        for key, folder in (("preset", CONF_DIR / "search"), ("recipe", CONF_DIR)):
            name = getattr(self, key)
            if not (folder / f"{name}.yaml").is_file():
                known = sorted(p.stem for p in folder.glob("*.yaml"))
                raise ConfigError(f"{SECTION}.{key}", name, f"one of {', '.join(known)}")


def rank_correlation(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None with < 3 points or a constant side."""
    import pandas as pd

    frame = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(frame) < 3 or frame["x"].nunique() < 2 or frame["y"].nunique() < 2:
        return None
    return float(frame["x"].rank().corr(frame["y"].rank()))


def search_config(opts: ProxyRankOptions) -> Any:
    from edgesmith.search.config import SearchConfig, load_preset

    preset = load_preset(CONF_DIR / "search" / f"{opts.preset}.yaml", seed=opts.seed)
    merged = OmegaConf.merge(preset, OmegaConf.create(opts.search))
    return build_options(SearchConfig, OmegaConf.to_container(merged), key=f"{SECTION}.search")


def draw_candidates(cfg: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct candidates of the space that pass the analytic constraints."""
    import optuna

    from edgesmith.search.cost import estimate_cost
    from edgesmith.search.space import SearchSpace

    space, limits = SearchSpace(cfg.space), cfg.constraints
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: list[dict[str, Any]] = []
    for _ in range(200 * n):
        trial = study.ask()
        candidate = space.sample(trial)
        study.tell(trial, 0.0)
        est = estimate_cost(candidate)
        if (candidate in found or est.params < limits.min_params
                or (limits.max_params is not None and est.params > limits.max_params)
                or est.embedding_share > limits.max_embedding_share):
            continue
        found.append(candidate)
        if len(found) == n:
            return found
    raise ConfigError(f"{SECTION}.candidates", n, f"at most the {len(found)} distinct feasible candidates "
                                                  f"the space of preset '{cfg.name}' offered in {200 * n} draws")


def recipe_config(opts: ProxyRankOptions, candidate: dict[str, Any]) -> Any:
    """The recipe's stage sections with this benchmark's overrides, training ``candidate``."""
    recipe = OmegaConf.load(CONF_DIR / f"{opts.recipe}.yaml")
    cfg = {"seed": opts.seed, "init_from": None, "model": candidate,
           "pipeline": {"stages": ["pretrain", "sft", "eval"]}}
    for stage in ("pretrain", "sft", "eval"):
        base = OmegaConf.select(recipe, stage, default=None) or {}
        cfg[stage] = OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(getattr(opts, stage)))
    return OmegaConf.create(cfg)


def trained_bits_per_byte(proxy: Any, model_dir: str) -> float:
    """The trained model's bits per byte on the proxy's held-out documents, with its own tokenizer."""
    from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
    from edgesmith.search.proxies.text_data import tokenizer_encoder

    model, tokenizer = load_model_and_tokenizer(model_dir)
    _, val_docs = proxy.documents()
    return proxy.bits_per_byte(model, tokenizer_encoder(tokenizer)(val_docs))


def run_proxy_rank(opts: ProxyRankOptions, cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Proxy vs trained quality for ``candidates`` candidates; prints and returns the rank correlations."""
    from edgesmith.core.pipeline import run_pipeline
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.plugins.stages.search import proxy_inputs
    from edgesmith.search.cost import estimate_cost
    from edgesmith.search.space import layer_pattern
    from edgesmith.search.study import build_proxy

    search = search_config(opts)
    plugins = get_plugin_manager()
    proxy = build_proxy(plugins, search.proxy, f"{SECTION}.search.proxy", proxy_inputs(search))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    drawn = draw_candidates(search, opts.candidates, opts.seed)
    rows = []
    for i, candidate in enumerate(drawn):
        pattern = layer_pattern(candidate)
        console.print(f"bench proxy: candidate {i + 1}/{len(drawn)} ({pattern}, hidden {candidate['hidden_size']}, "
                      f"vocab {candidate['vocab_size']})", highlight=False)
        value = float(proxy.evaluate(candidate))
        artifacts = run_pipeline(recipe_config(opts, candidate), out_dir / f"candidate_{i}", plugins, console)
        summary = artifacts["eval"].metadata["summary"]
        accuracy = {env: modes["greedy"]["accuracy"] for env, modes in summary.items() if "greedy" in modes}
        if not accuracy:
            raise ConfigError(f"{SECTION}.eval.greedy", False, "true: the benchmark ranks greedy accuracy")
        est = estimate_cost(candidate)
        rows.append({"candidate": i, "pattern": pattern, "hidden_size": candidate["hidden_size"],
                     "vocab_size": candidate["vocab_size"], "params": est.params,
                     "embedding_share": est.embedding_share, "proxy": value,
                     "pretrained_bits_per_byte": trained_bits_per_byte(proxy, artifacts["pretrain"].path),
                     "accuracy": sum(accuracy.values()) / len(accuracy), "accuracy_by_env": accuracy,
                     "model_config": candidate})
    proxies = [r["proxy"] for r in rows]
    result = {
        "spearman_proxy_vs_accuracy": rank_correlation(proxies, [-r["accuracy"] for r in rows]),
        "spearman_proxy_vs_pretrained_bpb": rank_correlation(proxies, [r["pretrained_bits_per_byte"] for r in rows]),
        "n": len(rows), "proxy_unit": proxy.unit,
    }
    _print(rows, result)
    (out_dir / "proxy_rank.json").write_text(json.dumps(
        {"options": asdict(opts), "search": asdict(search), "result": result, "rows": rows}, indent=2, default=str))
    _plot(rows, result, out_dir / "proxy_rank.png")
    return {**result, "rows": rows}


def _fmt(rho: float | None) -> str:
    return "undefined (< 3 candidates or all equal)" if rho is None or math.isnan(rho) else f"{rho:+.3f}"


def _print(rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    table = Table(title=f"bench proxy: proxy ({result['proxy_unit']}) vs trained quality")
    for col in ("candidate", "pattern", "hidden", "vocab", "params", "proxy", "pretrained bpb", "accuracy"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["candidate"]), r["pattern"], str(r["hidden_size"]), str(r["vocab_size"]),
                      f"{r['params']:,}", f"{r['proxy']:.4f}", f"{r['pretrained_bits_per_byte']:.4f}",
                      f"{r['accuracy']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"Spearman rank correlation, proxy vs -accuracy: {_fmt(result['spearman_proxy_vs_accuracy'])}; "
                  f"proxy vs pretrained bits per byte: {_fmt(result['spearman_proxy_vs_pretrained_bpb'])} "
                  f"(n={result['n']}; +1: the proxy orders candidates as training does)", highlight=False)


def _plot(rows: list[dict[str, Any]], result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    x = [r["proxy"] for r in rows]
    a.scatter(x, [r["accuracy"] for r in rows])
    a.set_xlabel(f"proxy ({result['proxy_unit']})")
    a.set_ylabel("greedy accuracy after pretrain + SFT")
    a.set_title(f"Spearman {_fmt(result['spearman_proxy_vs_accuracy'])}", fontsize=9)
    b.scatter(x, [r["pretrained_bits_per_byte"] for r in rows])
    b.set_xlabel(f"proxy ({result['proxy_unit']})")
    b.set_ylabel("pretrained bits per byte")
    b.set_title(f"Spearman {_fmt(result['spearman_proxy_vs_pretrained_bpb'])}", fontsize=9)
    for r in rows:
        a.annotate(str(r["candidate"]), (r["proxy"], r["accuracy"]), fontsize=8)
        b.annotate(str(r["candidate"]), (r["proxy"], r["pretrained_bits_per_byte"]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
