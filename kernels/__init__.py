"""Token-mixer kernels: per family (short_conv, swa, gated_delta, linear_attn) a pure-torch
``reference.py``, Triton kernels in ``triton.py`` (each a ``torch.autograd.Function``), and
``ops.py`` with the functions operators call, which pick one per call through
:mod:`edgesmith.kernels.backend` (``auto`` | ``torch`` | ``triton``). Triton is imported only
when a call is routed to it, so this package works where Triton is missing or broken.
"""
