"""An operator registered at run time (as a third-party package would) works in the model:
decode equals the full pass, left padding leaves no trace, it saves and loads; without the
plugin, loading names the missing operator and lists the registered ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import ConfigError, PluginError
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer
from edgesmith.core.plugin_manager import get_plugin_manager


@dataclass
class EmaOptions(OperatorOptions):
    init_decay: float = 0.9

    def validate(self, dims: ModelDims, key: str) -> None:
        if not 0 < self.init_decay < 1:
            raise ConfigError(f"{key}.init_decay", self.init_decay, "a number strictly between 0 and 1")


class EmaMixer(TokenMixer):
    """h_t = a * h_{t-1} + (1 - a) * W x_t per channel, with a learned decay a; state {"ema": (B, D)}."""

    options_class = EmaOptions

    def __init__(self, dims, options, layer_idx=0):
        super().__init__(dims, options, layer_idx)
        d = dims.hidden_size
        self.in_proj = nn.Linear(d, d, bias=False)
        self.decay_logit = nn.Parameter(torch.empty(d))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        p = self.options.init_decay  # plain math: from_pretrained builds modules on the meta device
        self.decay_logit.fill_(math.log(p / (1 - p)))

    def init_state(self, batch_size, device, dtype):
        return {"ema": torch.zeros(batch_size, self.dims.hidden_size, device=device, dtype=dtype)}

    def forward(self, hidden_states, state=None, attention_mask=None, position_ids=None):
        B, T, D = hidden_states.shape
        x = self.in_proj(hidden_states)
        a = torch.sigmoid(self.decay_logit)
        h = state["ema"] if state is not None else x.new_zeros(B, D)
        valid = (attention_mask[:, -T:].bool() if attention_mask is not None
                 else torch.ones(B, T, dtype=torch.bool, device=x.device))
        outs = []
        for t in range(T):  # padding keeps the state as it was
            h = torch.where(valid[:, t, None], a * h + (1 - a) * x[:, t], h)
            outs.append(h)
        return torch.stack(outs, dim=1), ({"ema": h} if state is not None else None)

    @classmethod
    def param_count(cls, dims, options):
        return dims.hidden_size * dims.hidden_size + dims.hidden_size

    @classmethod
    def state_bytes(cls, dims, options, context_length, batch_size=1, dtype_bytes=2):
        return batch_size * dims.hidden_size * dtype_bytes


class ThirdPartyPlugin:
    @hookimpl
    def edgesmith_operators(self):
        return {"ema_test": EmaMixer}


@pytest.fixture
def ema_registered():
    manager = get_plugin_manager()
    manager.register(ThirdPartyPlugin(), name="tests:ema", provider="edgesmith tests (ema_test)")
    try:
        yield manager
    finally:
        manager.unregister("tests:ema")


def make() -> EdgeForCausalLM:
    torch.manual_seed(0)
    return EdgeForCausalLM(EdgeConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2,
        layers=[{"op": "ema_test", "init_decay": 0.8}, {"op": "gqa"}], eos_token_id=None)).eval()


def test_third_party_operator_decodes_pads_saves_and_loads(ema_registered, tmp_path):
    model = make()
    assert model.parameter_breakdown()["operators"] == sum(
        cls.param_count(model.config.dims, o) for cls, o in model.config.resolve_operators())
    assert torch.allclose(torch.sigmoid(model.model.layers[0].operator.decay_logit), torch.tensor(0.8))
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        out = model(ids[:, :4], use_cache=True)
        pieces = [out.logits]
        for t in range(4, 9):
            out = model(ids[:, t:t + 1], cache=out.cache)
            pieces.append(out.logits)
    assert (torch.cat(pieces, 1) - full).abs().max() <= 1e-5

    prompts = [ids[0, :3].tolist(), ids[1].tolist()]
    batch_ids = torch.tensor([[7] * 6 + prompts[0], prompts[1]])  # ordinary tokens under the mask
    mask = torch.tensor([[0] * 6 + [1] * 3, [1] * 9])
    batch = model.generate(batch_ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False)
        assert batch[row, 9:].tolist() == alone[0, len(prompt):].tolist()

    with torch.no_grad():  # trained-looking value, different from what reset_parameters sets
        model.model.layers[0].operator.decay_logit.add_(0.5)
    model.save_pretrained(tmp_path)
    loaded = EdgeForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)  # reset_parameters did not overwrite


def test_loading_without_the_plugin_lists_registered_operators(ema_registered, tmp_path):
    make().save_pretrained(tmp_path)
    ema_registered.unregister("tests:ema")
    try:
        with pytest.raises(PluginError, match="ema_test.*registered operators: .*gqa.*short_conv"):
            EdgeForCausalLM.from_pretrained(tmp_path)
    finally:
        ema_registered.register(ThirdPartyPlugin(), name="tests:ema")
