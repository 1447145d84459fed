"""Backend dispatch: auto / torch / triton, the process default, the config key, and errors."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from edgesmith.core.cli import apply_kernel_backend  # noqa: E402
from edgesmith.core.errors import ConfigError  # noqa: E402
from edgesmith.kernels import backend as kb  # noqa: E402
from edgesmith.kernels.gated_delta import ops as gd_ops  # noqa: E402
from edgesmith.kernels.linear_attn import ops as la_ops  # noqa: E402
from edgesmith.kernels.short_conv import ops as sc_ops  # noqa: E402
from edgesmith.kernels.short_conv import reference as sc_ref  # noqa: E402
from edgesmith.kernels.swa import ops as swa_ops  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_default():
    before = kb.get_default_backend()
    kb.set_default_backend("auto")          # whatever an earlier in-process CLI run left behind
    yield
    kb.set_default_backend(before)


# Where the Triton backend can run in this process: CUDA when present, else the interpreter.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _conv_inputs(device: torch.device = DEVICE):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 11, generator=gen).to(device).requires_grad_()
    return x, torch.randn(8, 3, generator=gen).to(device)


def _grad_fn(t: torch.Tensor) -> str:
    return type(t.grad_fn).__name__


def test_auto_runs_torch_for_cpu_tensors_even_with_the_interpreter_on():
    x, w = _conv_inputs(torch.device("cpu"))
    y, _ = sc_ops.causal_conv1d(x, w)                      # default: auto
    assert not _grad_fn(y).startswith("CausalConv1dFunction")
    assert torch.equal(y, sc_ref.causal_conv1d(x, w)[0])
    q = torch.randn(1, 5, 2, 16, requires_grad=True)
    o, _ = la_ops.chunk_linear_attn(q, q, q, backend="auto")
    assert not _grad_fn(o).startswith("ChunkLinearAttnFunction")


def test_explicit_triton_runs_the_kernel():
    x, w = _conv_inputs()
    y, _ = sc_ops.causal_conv1d(x, w, backend="triton")
    assert _grad_fn(y).startswith("CausalConv1dFunction")


def test_process_default_and_context_manager():
    x, w = _conv_inputs()
    kb.set_default_backend("triton")
    assert kb.get_default_backend() == "triton"
    assert _grad_fn(sc_ops.causal_conv1d(x, w)[0]).startswith("CausalConv1dFunction")
    with kb.use_backend("torch"):
        assert kb.get_default_backend() == "torch"
        assert not _grad_fn(sc_ops.causal_conv1d(x, w)[0]).startswith("CausalConv1dFunction")
    assert kb.get_default_backend() == "triton"
    # an explicit argument wins over the default
    assert not _grad_fn(sc_ops.causal_conv1d(x, w, backend="torch")[0]).startswith("CausalConv1dFunction")


def test_invalid_backend_names_are_config_errors():
    x, w = _conv_inputs()
    with pytest.raises(ConfigError, match=r"backend='cuda': accepted auto, torch, triton"):
        sc_ops.causal_conv1d(x, w, backend="cuda")
    with pytest.raises(ConfigError, match=r"kernels\.backend='fast'"):
        kb.set_default_backend("fast")
    with pytest.raises(ConfigError):
        with kb.use_backend("Triton"):
            pass
    assert kb.get_default_backend() == "auto"


def test_config_key_is_applied_and_validated():
    apply_kernel_backend(OmegaConf.create({"kernels": {"backend": "torch"}}))
    assert kb.get_default_backend() == "torch"
    apply_kernel_backend(OmegaConf.create({"seed": 0}))       # key absent: default left alone
    assert kb.get_default_backend() == "torch"
    with pytest.raises(ConfigError, match=r"kernels\.backend='gpu'.*auto, torch, triton"):
        apply_kernel_backend(OmegaConf.create({"kernels": {"backend": "gpu"}}))
    base = OmegaConf.load(os.path.join(os.path.dirname(__file__), "..", "conf", "base.yaml"))
    assert base.kernels.backend == "auto"


def test_unsupported_call_falls_back_under_auto_and_errors_under_triton():
    q = torch.randn(1, 4, 1, 8, dtype=torch.float64)
    o, _ = gd_ops.chunk_gated_delta_rule(q, q, q, q[..., 0] * 0, q[..., 0] * 0 + 0.5)
    assert o.dtype == torch.float64
    with pytest.raises(kb.KernelBackendError, match="float64"):
        gd_ops.chunk_gated_delta_rule(q, q, q, q[..., 0] * 0, q[..., 0] * 0 + 0.5, backend="triton")
    big = torch.randn(1, 1, 3, 512)
    with pytest.raises(kb.KernelBackendError, match="head_dim 512"):
        swa_ops.sliding_window_attention(big, big, big, 2, backend="triton")


_CANNOT_RUN = textwrap.dedent("""
    import torch
    from edgesmith.kernels.backend import KernelBackendError
    from edgesmith.kernels.short_conv import ops
    from edgesmith.core.errors import EdgesmithError
    assert not torch.cuda.is_available()
    x = torch.randn(1, 4, 5); w = torch.randn(4, 3)
    y, _ = ops.causal_conv1d(x, w)              # auto still works: the torch path
    try:
        ops.causal_conv1d(x, w, backend="triton")
    except KernelBackendError as exc:
        assert isinstance(exc, EdgesmithError)
        print("ERROR:", exc)
    else:
        print("NO ERROR")
    # Triton decides interpreter-or-GPU when a kernel is decorated: turning the interpreter
    # on after the kernel module was imported must be explained, not silently ignored.
    import os
    import edgesmith.kernels.short_conv.triton
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        ops.causal_conv1d(x, w, backend="triton")
    except KernelBackendError as exc:
        print("LATE:", exc)
""")


def test_triton_where_it_cannot_run_is_a_clear_error():
    # Truthfully "cannot run": a fresh process with no GPU visible and the interpreter off.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run([sys.executable, "-c", _CANNOT_RUN], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ERROR: kernel backend 'triton' cannot run" in out
    assert "on 'cpu'" in out and "TRITON_INTERPRET=1" in out and "backend='torch'" in out
    assert "LATE: kernel backend 'triton' cannot run" in out and "set it before importing" in out


_NO_TRITON = textwrap.dedent("""
    import sys
    sys.modules["triton"] = None        # an install where `import triton` fails
    import torch
    from edgesmith.kernels.backend import KernelBackendError
    from edgesmith.kernels.gated_delta import ops as gd
    from edgesmith.kernels.linear_attn import ops as la
    from edgesmith.kernels.short_conv import ops as sc
    from edgesmith.kernels.swa import ops as sw
    q = torch.randn(1, 6, 2, 4)
    gd.chunk_gated_delta_rule(q, q, q, q[..., 0] * 0, q[..., 0] * 0 + 0.5)
    la.chunk_linear_attn(q, q, q)
    sc.causal_conv1d(torch.randn(1, 4, 5), torch.randn(4, 3))
    sw.sliding_window_attention(q, q, q, 2)
    try:
        sc.causal_conv1d(torch.randn(1, 4, 5), torch.randn(4, 3), backend="triton")
    except KernelBackendError as exc:
        print("ERROR:", exc)
""")


def test_package_imports_and_runs_without_a_working_triton():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", _NO_TRITON], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR: kernel backend 'triton' cannot run this call: triton cannot be imported" in proc.stdout
