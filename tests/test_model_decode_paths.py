"""Decode paths: the preallocated gqa cache, the bf16 mat-vec path and the int8 layers (weight-only, dynamic).

fp32 stays exact (the operator tests hold prefill + decode to the full pass); bf16 and int8
are held to the tolerances stated here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgesmith.core.cache import CACHE_BLOCK, cache_capacity
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import ConfigError
from edgesmith.core.linear import (INT8_KERNEL_MAX_ROWS, Int8DynamicLinear, Int8Linear, Linear, quantize,
                                   quantize_int8, quantize_int8_dynamic)

FBGEMM = pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines,
                            reason="int8_dynamic needs PyTorch's fbgemm engine (x86)")
from edgesmith.core.modeling import EdgeForCausalLM

HYBRID = [{"op": "short_conv"}, {"op": "gqa"}, {"op": "swa", "window": 6}, {"op": "short_conv"}]


def model_with(layers, hidden=32, vocab=64, seed=0, init=0.2) -> EdgeForCausalLM:
    torch.manual_seed(seed)
    config = EdgeConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden, num_attention_heads=4,
                        num_key_value_heads=2, layers=layers, eos_token_id=None, initializer_range=init)
    return EdgeForCausalLM(config).eval()


def test_cache_capacity_is_whole_blocks():
    assert [cache_capacity(n) for n in (1, CACHE_BLOCK, CACHE_BLOCK + 1)] == [CACHE_BLOCK, CACHE_BLOCK,
                                                                              2 * CACHE_BLOCK]


def test_gqa_decode_writes_in_place_and_grows_by_blocks():
    """Within a block every step writes into the same buffer; crossing it regrows once, and the
    logits stay those of the full pass (fp32) across the boundary."""
    model = model_with(HYBRID)
    length = CACHE_BLOCK + 3
    ids = torch.randint(3, 64, (2, length), generator=torch.Generator().manual_seed(5))
    start = CACHE_BLOCK - 3
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        out = model(ids[:, :start], use_cache=True)
        cache, pieces, pointers = out.cache, [out.logits], []
        for t in range(start, length):
            out = model(ids[:, t:t + 1], cache=cache)
            pieces.append(out.logits)
            state = cache.layers[1].state
            pointers.append((t + 1, state["key"].data_ptr(), state["key"].shape[2], state["length"]))
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5
    within = {ptr for n, ptr, _, _ in pointers if n <= CACHE_BLOCK}
    beyond = {ptr for n, ptr, _, _ in pointers if n > CACHE_BLOCK}
    assert len(within) == 1 and len(beyond) == 1 and within != beyond
    assert [(cap, n) for n, _, cap, n in pointers][-1] == (2 * CACHE_BLOCK, length)
    assert cache.layers[2].state["key"].shape[2] == 6  # swa: never more than its window


def test_gqa_cache_under_autograd_is_out_of_place():
    """With gradients on, the cache is concatenated (an in-place write would break backward)."""
    model = model_with([{"op": "gqa"}]).train()
    ids = torch.randint(3, 64, (1, 6), generator=torch.Generator().manual_seed(6))
    out = model(ids[:, :4], use_cache=True)
    out2 = model(ids[:, 4:], cache=out.cache)
    (out.logits.sum() + out2.logits.sum()).backward()
    assert out2.cache.layers[0].state["key"].shape[2] == 6
    assert model.lm_head.weight.grad is not None


def test_bf16_single_row_takes_the_matvec_and_other_shapes_stay_linear():
    torch.manual_seed(0)
    layer = Linear(256, 512, bias=False).to(torch.bfloat16)
    row = torch.randn(1, 1, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(layer(row)[0, 0], torch.mv(layer.weight, row[0, 0]))
        reference = F.linear(row.float(), layer.weight.float())
        assert (layer(row).float() - reference).abs().max().item() <= 2e-2 * reference.abs().max().item()
        rows = torch.randn(3, 2, 256, dtype=torch.bfloat16)
        assert torch.equal(layer(rows), F.linear(rows, layer.weight))  # prefill, batches: nn.Linear exactly
        row32 = row.float()
        layer32 = layer.float()
        assert torch.equal(layer32(row32), F.linear(row32, layer32.weight))  # fp32: nn.Linear exactly


def test_bf16_decode_matches_the_bf16_full_pass_within_tolerance():
    """Stated tolerance: prefill + single-row bf16 decode (mat-vec path) vs the bf16 full pass,
    max |logit difference| <= 5% of the largest |logit|, and the same greedy tokens."""
    model = model_with(HYBRID, hidden=256, vocab=300).to(torch.bfloat16)
    ids = torch.randint(3, 300, (1, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits.float()
        out = model(ids[:, :8], use_cache=True)
        pieces = [out.logits.float()]
        for t in range(8, 16):
            out = model(ids[:, t:t + 1], cache=out.cache)
            pieces.append(out.logits.float())
    stepped = torch.cat(pieces, dim=1)
    assert (stepped - full).abs().max().item() <= 0.05 * full.abs().max().item()
    assert torch.equal(stepped.argmax(-1), full.argmax(-1))


def test_int8_linear_is_the_dequantized_product():
    torch.manual_seed(1)
    dense = torch.nn.Linear(64, 48, bias=True)
    layer = Int8Linear(dense.weight, dense.bias)
    assert layer.weight_int8.dtype == torch.int8 and layer.scales.shape == (48,)
    # per-channel rounding error: half a step of that channel's scale (+1%: the scale is rounded to bf16)
    step = layer.scales.float()[:, None]
    assert ((layer.dequantized() - dense.weight).abs() <= 0.51 * step).all()
    for shape in ((2, 5, 64), (3, INT8_KERNEL_MAX_ROWS, 64)):  # the int8 kernel; the dequantized GEMM
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = F.linear(x, layer.dequantized(), dense.bias)
            got = layer(x)
        assert got.dtype == x.dtype and got.shape == (*shape[:2], 48)
        assert (got - expected).abs().max().item() <= 2e-2 * expected.abs().max().item()  # bf16 activations


def test_quantized_model_logits_within_tolerance_of_bf16():
    """Stated tolerance: int8 weight-only logits vs the bf16 model's, max |difference| <= 10% of
    the largest |logit|, and the greedy next token agrees at >= 90% of positions."""
    model = model_with(HYBRID, hidden=256, vocab=300)
    bf16 = model.to(torch.bfloat16)
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        reference = bf16(ids).logits.float()
    q = quantize_int8(model_with(HYBRID, hidden=256, vocab=300).to(torch.bfloat16))
    linears = [m for m in q.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears  # every projection and the LM head are int8 now
    assert isinstance(q.lm_head, Int8Linear) and q.model.embed_tokens.weight.dtype == torch.bfloat16
    with torch.no_grad():
        logits = q(ids).logits.float()
        out = q(ids[:, :12], use_cache=True)  # decode runs on the int8 layers too
        step = q(ids[:, 12:13], cache=out.cache).logits.float()
    assert (logits - reference).abs().max().item() <= 0.10 * reference.abs().max().item()
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean().item() >= 0.9
    assert (step[:, 0] - logits[:, 12]).abs().max().item() <= 0.05 * logits.abs().max().item()


@FBGEMM
@pytest.mark.parametrize("reduce_range", [False, True])
def test_int8_dynamic_linear_is_the_dequantized_product_of_rounded_rows(monkeypatch, reduce_range):
    """The weight is per-channel int8 (half a step of error per weight); rows are rounded to
    8 bits per call (7 where the CPU lacks VNNI: twice the step), so the product is within 2%
    (4%) of the largest output of the dequantized weight's, at any row count."""
    import edgesmith.core.linear as linear

    monkeypatch.setattr(linear, "DYNAMIC_REDUCE_RANGE", reduce_range)
    torch.manual_seed(2)
    dense = torch.nn.Linear(64, 48, bias=True)
    layer = Int8DynamicLinear(dense.weight, dense.bias)
    scales = dense.weight.detach().abs().amax(1, keepdim=True) / 127
    assert ((layer.dequantized() - dense.weight).abs() <= 0.51 * scales).all()
    assert layer.packed_bytes == 48 * 64 + 48 * 4 and not list(layer.buffers())
    for shape, dtype in (((1, 1, 64), torch.float32), ((3, 100, 64), torch.float32), ((2, 5, 64), torch.bfloat16)):
        x = torch.randn(*shape).to(dtype)
        with torch.no_grad():
            expected = F.linear(x.float(), layer.dequantized(), dense.bias)
            got = layer(x)
        assert got.dtype == dtype and got.shape == (*shape[:2], 48)
        tolerance = 4e-2 if reduce_range else 2e-2
        assert (got.float() - expected).abs().max().item() <= tolerance * expected.abs().max().item()


@FBGEMM
def test_int8_dynamic_model_logits_within_tolerance_of_fp32_and_bf16():
    """Stated tolerance, as for int8 weight-only: logits vs the fp32 and the bf16 model's, max
    |difference| <= 10% of the largest |logit|, greedy next token agreeing at >= 90% of
    positions; prefill + decode within 5% of the full pass. At the usual initialization
    (0.02): rounding each call's rows to 8 bits costs more where activations have a wider
    range (the 0.2-initialized model of the other tests: 11% and 79% agreement)."""
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        fp32 = model_with(HYBRID, hidden=256, vocab=300, init=0.02)(ids).logits
        bf16 = model_with(HYBRID, hidden=256, vocab=300, init=0.02).to(torch.bfloat16)(ids).logits.float()
    q = quantize(model_with(HYBRID, hidden=256, vocab=300, init=0.02), "int8_dynamic")
    assert not [m for m in q.modules() if isinstance(m, torch.nn.Linear)]
    assert isinstance(q.lm_head, Int8DynamicLinear) and q.model.embed_tokens.weight.dtype == torch.float32
    with torch.no_grad():
        logits = q(ids).logits
        out = q(ids[:, :12], use_cache=True)
        step = q(ids[:, 12:13], cache=out.cache).logits
    for reference in (fp32, bf16):
        assert (logits - reference).abs().max().item() <= 0.10 * reference.abs().max().item()
        assert (logits.argmax(-1) == reference.argmax(-1)).float().mean().item() >= 0.9
    assert (step[:, 0] - logits[:, 12]).abs().max().item() <= 0.05 * logits.abs().max().item()


@FBGEMM
def test_int8_dynamic_takes_every_width_and_frees_the_float_weights():
    """fbgemm has no block constraint (24 inputs is fine); each float weight is dropped once
    replaced, so nothing but the packed int8 copies stays referenced."""
    import weakref

    model = torch.nn.Sequential(torch.nn.Linear(24, 16), torch.nn.Linear(16, 8))
    refs = [weakref.ref(layer.weight) for layer in model]
    quantize_int8_dynamic(model)
    assert all(isinstance(layer, Int8DynamicLinear) for layer in model)
    assert all(ref() is None for ref in refs)


def test_layers_the_kernel_cannot_take_stay_dense():
    model = torch.nn.Sequential(torch.nn.Linear(24, 16), torch.nn.Linear(16, 8))  # 24: not a multiple of 16
    quantize_int8(model)
    assert isinstance(model[0], torch.nn.Linear) and isinstance(model[1], Int8Linear)


def test_unknown_quantization_is_named():
    with pytest.raises(ConfigError) as err:
        quantize(torch.nn.Linear(16, 16), "int4")
    assert "quant='int4'" in str(err.value) or "quant=int4" in str(err.value)
    assert "int8" in str(err.value)
    model = torch.nn.Linear(16, 16)
    assert quantize(model, None) is model


@FBGEMM
def test_quantizing_a_loaded_checkpoint_lets_its_file_go(tmp_path):
    """A checkpoint loaded memory-mapped (transformers maps float32 ones loaded as float32, as
    int8_dynamic loads them) stays mapped, and what quantizing read stays resident, while a
    tensor views it; after quantize no tensor does, so the file is unmapped."""
    import gc

    import psutil

    from edgesmith.core.linear import QUANT_LOAD_DTYPES

    model_with(HYBRID, hidden=64, vocab=128).save_pretrained(tmp_path)
    weights = str((tmp_path / "model.safetensors").resolve())

    def mapped() -> bool:
        return any(m.path == weights for m in psutil.Process().memory_maps())

    loaded = EdgeForCausalLM.from_pretrained(tmp_path, dtype=QUANT_LOAD_DTYPES["int8_dynamic"]).eval()
    assert mapped()
    quantize(loaded, "int8_dynamic")
    gc.collect()
    assert not mapped()
    ids = torch.arange(3, 11)[None]
    with torch.no_grad():  # the copies hold the same values: the same model quantized in memory
        reference = quantize(model_with(HYBRID, hidden=64, vocab=128), "int8_dynamic")(ids).logits
        assert torch.equal(loaded(ids).logits, reference)
