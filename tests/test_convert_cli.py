"""`edgesmith convert`: LFM2 directory -> edgesmith directory -> LFM2 directory, end to end."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, Lfm2Config, Lfm2ForCausalLM, PreTrainedTokenizerFast

from edgesmith.core.cli import main
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.modeling import EdgeForCausalLM

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "hello", "world", "edge", "model"]


@pytest.fixture(scope="module")
def lfm2_dir(tmp_path_factory):
    """A random-init LFM2 checkpoint with a real (tiny, word-level) tokenizer beside it."""
    path = tmp_path_factory.mktemp("lfm2")
    torch.manual_seed(0)
    config = Lfm2Config(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, full_attn_idxs=[1])
    Lfm2ForCausalLM(config).save_pretrained(path)
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                            bos_token="<s>", eos_token="</s>").save_pretrained(path)
    return path


def convert(tmp_path, *args) -> int:
    return main(["convert", *args, f"hydra.run.dir={tmp_path / 'run'}"])


def logits(model, ids):
    with torch.no_grad():
        return model.eval()(ids).logits


def test_convert_to_edgesmith_and_back(lfm2_dir, tmp_path):
    ids = torch.tensor([[1, 4, 5, 6, 7, 4]])
    expected = logits(Lfm2ForCausalLM.from_pretrained(lfm2_dir), ids)

    assert convert(tmp_path, f"src={lfm2_dir}", f"dst={tmp_path / 'edge'}") == 0
    edge = AutoModelForCausalLM.from_pretrained(tmp_path / "edge")
    assert isinstance(edge, EdgeForCausalLM)
    assert (logits(edge, ids) - expected).abs().max().item() <= 1e-4
    assert AutoTokenizer.from_pretrained(tmp_path / "edge")("hello edge")["input_ids"] == [4, 6]

    assert convert(tmp_path, f"src={tmp_path / 'edge'}", f"dst={tmp_path / 'back'}", "to=lfm2") == 0
    back = Lfm2ForCausalLM.from_pretrained(tmp_path / "back")
    assert (logits(back, ids) - expected).abs().max().item() <= 1e-4
    assert AutoTokenizer.from_pretrained(tmp_path / "back")("world model")["input_ids"] == [5, 7]


@pytest.mark.parametrize("args, message", [
    (["dst=somewhere"], "invalid config value src=None: accepted an LFM2 checkpoint directory"),
    (["src=somewhere"], "invalid config value dst=None: accepted the directory to write"),
    (["src=a", "dst=b", "to=onnx"], "invalid config value to='onnx': accepted edgesmith or lfm2 or gguf"),
    (["src=/no/such/dir", "dst=b"], "invalid config value src='/no/such/dir': accepted an existing directory"),
    # ConvertOptions, through the options contract: every key listed, types checked
    (["+srcc=a", "dst=b"], "invalid config value srcc='a': accepted options of convert: dst, overwrite, quant, src, "
                           "threads, to"),
    (["src=a", "dst=b", "threads=all"], "invalid config value threads='all': accepted a value of the declared type"),
])
def test_bad_arguments_name_the_key(tmp_path, capsys, args, message):
    assert convert(tmp_path, *args) == 1
    assert message in capsys.readouterr().err


def test_non_empty_destination_is_kept(lfm2_dir, tmp_path, capsys):
    dst = tmp_path / "busy"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    assert convert(tmp_path, f"src={lfm2_dir}", f"dst={dst}") == 1
    assert "pass overwrite=true" in capsys.readouterr().err
    assert sorted(p.name for p in dst.iterdir()) == ["notes.txt"]
    assert convert(tmp_path, f"src={lfm2_dir}", f"dst={dst}", "overwrite=true") == 0
    assert (dst / "config.json").exists() and (dst / "notes.txt").read_text() == "mine"


def test_export_of_unexportable_model_says_why(tmp_path, capsys):
    torch.manual_seed(0)
    config = EdgeConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                        num_key_value_heads=2,
                        layers=[{"op": "short_conv"}, {"op": "gqa"}, {"op": "short_conv"}, {"op": "gated_deltanet"}])
    EdgeForCausalLM(config).save_pretrained(tmp_path / "hybrid")
    assert convert(tmp_path, f"src={tmp_path / 'hybrid'}", f"dst={tmp_path / 'out'}", "to=lfm2") == 1
    err = capsys.readouterr().err
    assert "cannot export to LFM2 format" in err
    assert "layer 3 is gated_deltanet: LFM2 has no recurrent (DeltaNet) layer type" in err
    assert not (tmp_path / "out").exists()


def test_importing_an_edgesmith_directory_is_rejected(tmp_path, capsys):
    torch.manual_seed(0)
    EdgeForCausalLM(EdgeConfig(vocab_size=64, hidden_size=32)).save_pretrained(tmp_path / "edge")
    assert convert(tmp_path, f"src={tmp_path / 'edge'}", f"dst={tmp_path / 'out'}") == 1
    assert "model_type='edgesmith'; accepted: 'lfm2'" in capsys.readouterr().err
