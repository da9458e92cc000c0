"""costs: the parameter, FLOP and byte formulas against the Flax model and against counts by hand."""

import dataclasses

import pytest

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.nn import transformer as mdl


@pytest.mark.parametrize('task', sorted(cfg.ROWS))
def test_param_count_equals_the_flax_model_for_configs_and_specs(task):
  for row in cfg.ROWS[task]:
    c = cfg.row_config(task, row, 'tiny')
    flax_count = mdl.count_params(mdl.abstract_params(mdl.make_model(c), task))
    assert costs.param_count(c.model, task) == flax_count, row
    assert costs.param_count(mdl.ModelSpec.from_config(c.model), task) == flax_count, row


def test_paper_lm_parameters_by_hand():
  # d = 1024, 6 layers, vocab 32768 (unshared softmax), 256 positions. Multi-head: q, k, v, o of
  # 1024 x 1024 each + FFN 2 x 1024 x 8192 + 2 norms per layer; multi-query: q, o of 1024 x 1024,
  # k, v of 1024 x 128, FFN widened to 9088: the same per-layer count, as the paper's rule wants.
  layer_mha = 4 * 1024 * 1024 + 2 * 1024 * 8192 + 2 * 1024
  layer_mqa = 2 * 1024 * 1024 + 2 * 1024 * 128 + 2 * 1024 * 9088 + 2 * 1024
  assert layer_mha == layer_mqa == 20_973_568
  total = 6 * layer_mha + 1024 + 2 * 32768 * 1024 + 256 * 1024
  assert total == 193_213_440
  for row in ('mha', 'mqa'):
    assert costs.param_count(cfg.row_config('lm', row).model, 'lm') == total


def test_equal_param_d_ff_for_a_frozen_spec():
  spec = mdl.ModelSpec.from_config(cfg.row_config('lm', 'mqa').model)
  target = costs.param_count(cfg.row_config('lm', 'mha').model, 'lm')
  assert costs.equal_param_d_ff(dataclasses.replace(spec, d_ff=1), 'lm', target) == 9088


@dataclasses.dataclass
class Dims:
  d_model: int = 2
  num_heads: int = 2
  num_kv_heads: int = 1
  qk_dim: int = 1
  v_dim: int = 1
  d_ff: int = 3
  encoder_layers: int = 0
  decoder_layers: int = 1
  vocab_size: int = 5
  window: int | None = None


def test_train_flops_by_hand():
  # one decoder layer, B = 1, T = 2: weights q 2·2·1 + k 2·1·1 + v 2·1·1 + o 2·1·2 = 12, FFN 2·2·3 = 12
  # -> 2·1·2·24 = 96; attention 2·B·N·T·T·(H + V) = 2·1·2·2·2·2 = 32; softmax 2·1·2·2·5 = 40
  assert costs.train_flops(Dims(), batch=1, src=0, tgt=2) == 3 * (96 + 32 + 40)


def test_lm_decoder_step_reads_weights_and_live_kv_only():
  m = Dims(d_model=4, num_heads=4, num_kv_heads=2, qk_dim=2, v_dim=2, d_ff=8, decoder_layers=3,
           vocab_size=16)
  c = costs.decoder_step_cost(m, hyps=5, sentences=5, source_len=99, live=7)
  weights = 3 * (4 * 4 * 2 + 4 * 2 * 2 + 4 * 2 * 2 + 4 * 2 * 4 + 2 * 4 * 8) + 4 * 16
  assert c['weight_bytes'] == 2 * weights                       # bf16
  assert c['self_kv_bytes'] == 5 * 7 * 2 * (2 + 2) * 2 * 3      # B · live · K · (H + V) · bytes · layers
  assert c['cross_kv_bytes'] == 0 and c['bytes'] == c['weight_bytes'] + c['self_kv_bytes']
  assert c['attention_flops'] == 2 * 5 * 4 * 7 * (2 + 2) * 3 and c['dense_flops'] == 2 * 5 * weights


def test_mean_live_positions():
  assert costs.mean_live(None, 4) == (1 + 2 + 3 + 4) / 4
  assert costs.mean_live(2, 4) == (1 + 2 + 2 + 2) / 4        # a window of 2 slots
  assert costs.mean_live(None, 1, start=63) == 64             # one step after 63 written positions


def test_datasheets_match_the_most_specific_device_kind():
  assert costs.datasheet('NVIDIA H200')['hbm_GBps'] == 4800
  h100 = costs.datasheet('NVIDIA H100 80GB HBM3')
  assert h100 == {'name': 'H100', 'hbm_GBps': 3350, 'bf16_TFLOPs': 989}
  assert costs.datasheet('NVIDIA H100 PCIe')['bf16_TFLOPs'] == 756
  assert costs.datasheet('cpu') is None
  assert costs.peak_flops('TPU v4') == 137.5e12 and costs.peak_flops('cpu') is None
  assert costs.mfu(989e12, 2.0, 989e12, devices=2) == 0.25
