"""The operators run on the Triton kernels when the backend says so, and agree with torch.

Each token mixer that has kernels (short_conv, swa, gated_deltanet, linear_attn) is run
once with ``use_backend("torch")`` and once with ``use_backend("triton")`` (the Triton
interpreter on CPU): a full forward with parameter gradients, and prefill followed by
decode steps. The autograd graph shows which kernels actually ran.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from edgesmith.core.operator import ModelDims  # noqa: E402
from edgesmith.plugins.operators import edgesmith_operators  # noqa: E402
from edgesmith.kernels.backend import use_backend  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DIMS = ModelDims(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
OPERATORS = {  # operator -> (options, autograd nodes its Triton path must put in the graph)
    "short_conv": ({"conv_length": 3}, {"CausalConv1dFunctionBackward"}),
    "swa": ({"window": 5}, {"SlidingWindowAttnFunctionBackward"}),
    "gated_deltanet": ({"num_heads": 2, "num_v_heads": 4, "head_v_dim": 6, "chunk_size": 16},
                       {"CausalConv1dFunctionBackward", "ChunkGatedDeltaRuleFunctionBackward"}),
    "linear_attn": ({"chunk_size": 16}, {"ChunkLinearAttnFunctionBackward"}),
}
TOL = 1e-4 if DEVICE.type == "cpu" else 2e-2   # float32: exact products in the interpreter, TF32 on GPUs


pytestmark = pytest.mark.usefixtures("one_thread")


def _build(name: str):
    # the built-in operators' own registration hook: no entry points needed (bare GPU machines)
    cls = edgesmith_operators()[name]
    options = cls.parse_options(OPERATORS[name][0], DIMS, f"model.layers[0].{name}")
    torch.manual_seed(0)
    op = cls(DIMS, options).to(DEVICE).eval()
    with torch.no_grad():
        for p in op.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return op


def _graph_nodes(t: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    return names


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return (got - want).abs().max().item() <= TOL * want.abs().max().item() + TOL


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_on_triton_matches_torch(name):
    op = _build(name)
    x = torch.randn(2, 20, DIMS.hidden_size, device=DEVICE)
    runs = {}
    for backend in ("torch", "triton"):
        op.zero_grad()
        with use_backend(backend):
            out, _ = op(x)
        nodes = _graph_nodes(out)
        out.pow(2).sum().backward()
        runs[backend] = (out.detach(), {n: p.grad.clone() for n, p in op.named_parameters()}, nodes)
    assert not (runs["torch"][2] & OPERATORS[name][1])
    assert OPERATORS[name][1] <= runs["triton"][2], f"Triton kernels not in the graph: {runs['triton'][2]}"
    assert _close(runs["triton"][0], runs["torch"][0])
    for pname, grad in runs["torch"][1].items():
        assert _close(runs["triton"][1][pname], grad), pname

    # prefill then decode on the kernels == the full torch forward
    with torch.no_grad(), use_backend("triton"):
        state = op.init_state(2, DEVICE, x.dtype)
        out, state = op(x[:, :18], state)
        steps = [out]
        for t in range(18, 20):
            out_t, state = op(x[:, t:t + 1], state)
            steps.append(out_t)
    assert _close(torch.cat(steps, 1), runs["torch"][0])
