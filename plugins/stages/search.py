"""The ``search`` stage and the ``edgesmith search`` command: run the architecture search.

Both read the ``search`` config group (:class:`edgesmith.search.config.SearchConfig`) and
supply what search/ must not import itself: the built-in corpus and the pipeline's BPE
trainer for the ``short_train`` proxy (which trains one tokenizer per candidate vocabulary
size with ``search.proxy.options.tokenizer=bpe``). The stage returns an artifact of
kind ``model_config`` whose path holds the chosen ``config.json`` (read it with
``EdgeConfig.from_pretrained(path)``); re-running resumes the study in the stage directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgesmith.core.command import command_options
from edgesmith.core.errors import StageError
from edgesmith.core.stage import Artifact, Stage, StageContext
from edgesmith.search.config import SearchConfig


def bpe_encoder(texts: list[str], vocab_size: int) -> Any:
    """The pipeline's tokenizer (byte-level BPE, chat special tokens) trained at ``vocab_size``."""
    from edgesmith.plugins.world.tokenizer import train_tokenizer
    from edgesmith.search.proxies.text_data import tokenizer_encoder

    return tokenizer_encoder(train_tokenizer(texts, vocab_size))


def proxy_inputs(cfg: SearchConfig) -> dict[str, Any]:
    """What the pipeline offers a quality proxy: the built-in corpus (read only when the proxy
    asks) and the BPE trainer; a proxy takes those its ``runtime_inputs`` names."""
    from edgesmith.plugins.world.corpus import build_corpus

    def texts_fn() -> list[str]:
        return build_corpus(cfg.corpus_documents, seed=cfg.seed)

    return {"texts_fn": texts_fn, "bpe_encoder": bpe_encoder}


def search_command(cfg: Any, run_dir: Path) -> Any:
    """``edgesmith search search=PRESET [search.key=value ...]``: one worker of the study."""
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.search.study import run_search

    # the `search` group's section is SearchConfig, as for the stage; any other top-level key is an error
    options, _ = command_options(cfg, SearchConfig, "search", group=SearchStage.options_group)
    return run_search(options, run_dir, get_plugin_manager(), proxy_kwargs=proxy_inputs(options))


class SearchStage(Stage):
    """Runs the search study in the stage directory and hands the chosen config to pretraining."""

    name = "search"
    options_class = SearchConfig
    options_group = "search"

    def run(self, ctx: StageContext) -> Artifact:
        from edgesmith.search.study import run_search

        # Every pipeline needs the chosen architecture in its own stage directory, so the stage
        # writes its own report even when other workers share the study.
        result = run_search(self.options, ctx.out_dir, ctx.plugins, proxy_kwargs=proxy_inputs(self.options),
                            report="every_worker")
        if result.chosen is None or result.chosen_dir is None:
            raise StageError(self.name, "no finished trial met the constraints and budgets, so there is "
                                        f"no architecture to pass on; see {ctx.out_dir / 'trials.csv'} and "
                                        "loosen search.constraints or search.choose budgets (or set "
                                        "search.choose.fallback=nearest)")
        chosen = result.chosen
        ctx.log_metrics(trial=chosen["trial"], **{f"value_{k}": v for k, v in chosen["values"].items()})
        return Artifact(kind="model_config", path=str(result.chosen_dir), metadata={
            "profile": chosen["profile"], "estimate": chosen["estimate"], "values": chosen["values"],
            "trial": chosen["trial"], "pattern": chosen["pattern"], "study": result.study_name,
            "storage": result.storage_url, "model_yaml": str(result.model_yaml), "spearman": result.spearman,
            # {"rule", "budgets", "within_budget", "proxy_unit", "reason", "row", "pareto"}: what the
            # report shows about why this architecture (edgesmith.search.choice.describe_choice).
            "choice": chosen["choice"],
        })
