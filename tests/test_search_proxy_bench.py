"""`edgesmith bench bench=proxy`: proxy vs the pipeline's training, in miniature (3 candidates,
a few steps each), and option errors before any work."""

from __future__ import annotations

import json

import pytest

from edgesmith.core.cli import main
from edgesmith.plugins.benchmarks.proxy_rank import rank_correlation

MINIATURE = [
    "+proxy.candidates=3",
    "+proxy.search={corpus_documents:80,space:{hidden_size:[64,128],num_layers:[2,3],vocab_size:[320,512]},"
    "proxy:{options:{tokens:1024,seq_len:32,eval_every:100,val_documents:8}}}",
    "+proxy.pretrain={n_documents:60,max_steps:3,batch_size:2,seq_len:64,save_steps:3,copy_warmup_steps:20}",
    "+proxy.sft={tasks_per_environment:4,environment_tasks:{toolcall:4,extraction:4},max_steps:2,batch_size:2,"
    "max_length:512,save_steps:2}",
    "+proxy.eval={envs:[toolcall],n_prompts:2,samples:0,max_new_tokens:8}",
]


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert rank_correlation([1, 2, 3], [5, 6, 5.5]) == 0.5
    assert rank_correlation([1, 2], [1, 2]) is None and rank_correlation([1, 2, 3], [0, 0, 0]) is None


def test_bad_option_is_named_before_any_work(tmp_path, capsys):
    assert main(["bench", "bench=proxy", "+proxy.preset=nope", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "invalid config value proxy.preset='nope'" in err and "main" in err and "tiny" in err
    assert not list(tmp_path.glob("candidate_*"))


@pytest.mark.slow
def test_proxy_benchmark_miniature_run(tmp_path, capsys):
    assert main(["bench", "bench=proxy", *MINIATURE, f"hydra.run.dir={tmp_path}"]) == 0
    report = json.loads((tmp_path / "proxy_rank.json").read_text())
    rows, result = report["rows"], report["result"]
    assert len(rows) == 3 and len({json.dumps(r["model_config"], sort_keys=True) for r in rows}) == 3
    for r in rows:
        assert 0 < r["proxy"] < 12 and 0 < r["pretrained_bits_per_byte"] < 12 and 0 <= r["accuracy"] <= 1
        assert set(r["accuracy_by_env"]) == {"toolcall"}
        assert (tmp_path / f"candidate_{r['candidate']}" / "sft" / "model" / "config.json").is_file()
    assert result["n"] == 3 and result["proxy_unit"] == "bits per byte"
    assert -1 <= result["spearman_proxy_vs_pretrained_bpb"] <= 1  # defined: three distinct values
    assert report["options"]["pretrain"]["max_steps"] == 3 and report["search"]["name"] == "main"
    assert (tmp_path / "proxy_rank.png").stat().st_size > 5000
    assert "Spearman rank correlation, proxy vs -accuracy" in capsys.readouterr().out
