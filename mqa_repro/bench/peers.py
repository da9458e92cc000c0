"""The LM decoding benchmark's peers: what a user would run instead of our JAX decoder, timed on the
same device at the same dimensions (lm_decode.py runs them beside ours).

  hf     HF transformers' ``LlamaForCausalLM`` (the closest class with ``num_key_value_heads``, so
         one class covers multi-head, grouped and multi-query), ``generate(..., cache_implementation=
         'static')``: a static K/V cache, which transformers compiles with ``torch.compile`` on CUDA
         by itself. bf16, greedy, min_new_tokens = max_new_tokens = N. Random weights (HF's init).
  torch  our LM written in PyTorch (torch_lm.py): static K/V cache, SDPA,
         ``torch.compile(mode='reduce-overhead', fullgraph=True)`` (CUDA graphs), a greedy loop; it
         carries OUR parameters, so at float32 it decodes our tokens (tests/test_lm_decode.py).

torch and transformers are optional (``pip install '.[peers]'``) and imported only here, when asked
for; a peer that cannot run is skipped with a note in the JSON.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from mqa_repro.bench.timing import median_seconds, warmup_after
from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

PEERS = ('hf', 'torch')

HF_DIFFERENCES = (
    'rotary position embeddings instead of our learned position table (no weights; a few '
    'elementwise ops per layer and step)',
    'SwiGLU FFN, three [D, F\'] matrices with F\' = round(2F/3), instead of our ReLU FFN\'s two [D, F]: '
    'the same weight bytes and FLOPs per token',
    'the static cache holds prompt + N = N + 1 slots (ours: N) and attention reads all of them under '
    'a mask, as our XLA path does',
    'HF\'s own random initialisation (timing does not depend on the values: EOS cannot end a row)',
    'generate() runs its logits processors and stopping checks around each compiled forward',
)
TORCH_DIFFERENCES = (
    'none in the model: our architecture and our parameters; SDPA reads all N cache slots under a '
    'mask (as our XLA path does; our Pallas path reads only the live ones)',
    'one compiled step (CUDA graph) per token, driven by a Python loop; torch.compile\'s default '
    '(automatic) dynamic shapes, so a second batch size may share one graph with symbolic sizes',
    'its cache is allocated once per batch size and not zeroed per generation (stale slots are '
    'masked); ours zero-fills its cache inside the timed run',
)


def _torch():
  try:
    import torch
  except ImportError:
    return None
  return torch


def status(names: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
  """Per peer: {'available', 'note', 'versions', 'differences'}; nothing is built or timed here."""
  torch = _torch()
  out = {}
  for name in names:
    if name not in PEERS:
      raise ValueError(f'unknown peer {name!r}; choose from {PEERS}')
    entry: dict[str, Any] = {'available': torch is not None,
                             'differences': list(HF_DIFFERENCES if name == 'hf' else TORCH_DIFFERENCES)}
    if torch is None:
      entry['note'] = "skipped: torch is not installed (pip install '.[peers]')"
    else:
      entry['versions'] = {'torch': torch.__version__, 'cuda': torch.version.cuda}
      entry['device'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'
      if not torch.cuda.is_available():
        entry['note'] = ('on the CPU, uncompiled: transformers compiles only on CUDA' if name == 'hf' else
                         'on the CPU, eager: without CUDA graphs torch.compile would add only compile time')
    if name == 'hf' and torch is not None:
      try:
        import transformers
        entry['versions']['transformers'] = transformers.__version__
      except ImportError:
        entry.update(available=False, note="skipped: transformers is not installed (pip install '.[peers]')")
    out[name] = entry
  return out


def _device(torch) -> str:
  return 'cuda' if torch.cuda.is_available() else 'cpu'


def _sync(torch) -> None:
  if torch.cuda.is_available():
    torch.cuda.synchronize()


def _timed(torch, run: Callable[[], Any], check: Callable[[Any], None], repeats: int,
           warmup: int | None) -> dict[str, float]:
  """The first call (it compiles and records CUDA graphs) timed apart and checked, then `warmup`
  more (None: timing.warmup_after's choice), then the median of `repeats`."""
  def call():
    with torch.no_grad():
      out = run()
    _sync(torch)
    return out
  start = time.perf_counter()
  check(call())
  first = time.perf_counter() - start
  warmup = warmup_after(first) if warmup is None else warmup
  return {'seconds': median_seconds(call, repeats, warmup), 'first_call_seconds': first}


class TorchPeer:
  """Our LM in PyTorch with our parameters (`params`: the JAX tree), one compiled step per batch."""
  name = 'torch'

  def __init__(self, spec: Any, params: Any, dtype: str = 'bfloat16'):
    import torch
    from mqa_repro.bench import torch_lm
    self.torch, self.lib = torch, torch_lm
    self.model = torch_lm.TorchLM(spec).to(device=_device(torch), dtype=getattr(torch, dtype))
    torch_lm.load_jax_params(self.model, params).requires_grad_(False)
    self.compiled = torch.cuda.is_available()

  def time(self, batch: int, new_tokens: int, repeats: int,
           warmup: int | None = None) -> dict[str, Any]:
    torch, model = self.torch, self.model
    model.setup(batch, new_tokens)
    step = (torch.compile(model.step, mode='reduce-overhead', fullgraph=True) if self.compiled
            else model.step)
    tokens: dict[str, Any] = {}

    def check(out):
      tokens['first'] = out[:, 0].cpu().numpy()
      if out.shape != (batch, new_tokens) or bool((out == PAD_ID).any()):
        raise RuntimeError(f'torch peer decoded {tuple(out.shape)} with PAD inside, wanted all '
                           f'{new_tokens} tokens of {batch} rows')
    skips = _cudagraph_skips(torch)
    row = _timed(torch, lambda: self.lib.greedy(model, step, batch), check, repeats, warmup)
    row.update(compiled=self.compiled, first_tokens=tokens['first'],
               cudagraph_skips=_cudagraph_skips(torch) - skips)
    return row

  def close(self) -> None:
    _release(self.torch)


class HFPeer:
  """``LlamaForCausalLM`` at our dimensions (HF_DIFFERENCES), generating with a static cache."""
  name = 'hf'

  def __init__(self, spec: Any, dtype: str = 'bfloat16'):
    os.environ.setdefault('HF_HUB_OFFLINE', '1')   # built from a config: nothing to download
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    self.torch = torch
    self.config = LlamaConfig(
        vocab_size=spec.vocab_size, hidden_size=spec.d_model,
        intermediate_size=round(2 * spec.d_ff / 3), num_hidden_layers=spec.decoder_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.qk_dim, max_position_embeddings=spec.max_length, rms_norm_eps=spec.norm_eps,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False, bos_token_id=BOS_ID,
        eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    model = LlamaForCausalLM._from_config(self.config, attn_implementation='sdpa')
    self.model = model.to(device=_device(torch), dtype=getattr(torch, dtype)).eval()

  def time(self, batch: int, new_tokens: int, repeats: int,
           warmup: int | None = None) -> dict[str, Any]:
    torch, model = self.torch, self.model
    ids = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=model.device)

    def run():
      return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            cache_implementation='static', pad_token_id=PAD_ID, eos_token_id=EOS_ID)

    def check(out):
      if out.shape != (batch, 1 + new_tokens):
        raise RuntimeError(f'generate() returned {tuple(out.shape)}, wanted ({batch}, {1 + new_tokens})')
    skips = _cudagraph_skips(torch)
    row = _timed(torch, run, check, repeats, warmup)
    row['cudagraph_skips'] = _cudagraph_skips(torch) - skips
    compile_config = getattr(model, '_last_compile_config', None)
    row.update(compiled=hasattr(model, '_compiled_call'),
               compile_config=compile_config.to_dict() if compile_config is not None else None,
               intermediate_size=self.config.intermediate_size)
    return row

  def close(self) -> None:
    _release(self.torch)


def _cudagraph_skips(torch) -> int:
  """Graphs inductor ran without CUDA graphs so far (a mutated input it cannot keep, a CPU tensor):
  a peer that skips them pays a launch per kernel, which its row should say."""
  try:
    from torch._dynamo.utils import counters
  except ImportError:
    return 0
  return int(counters['inductor'].get('cudagraph_skips', 0))


def _release(torch) -> None:
  """Drop compiled graphs (and their CUDA graph pools) and cached blocks before the next model."""
  torch._dynamo.reset()
  if torch.cuda.is_available():
    torch.cuda.empty_cache()


def make(name: str, spec: Any, params: Any) -> TorchPeer | HFPeer:
  import torch
  # Every batch and length is a new static shape, so a new graph of the same code: let dynamo keep
  # them all rather than fall back to eager after its default of 8.
  for key in ('cache_size_limit', 'recompile_limit', 'accumulated_cache_size_limit',
              'accumulated_recompile_limit'):
    if hasattr(torch._dynamo.config, key):
      setattr(torch._dynamo.config, key, max(getattr(torch._dynamo.config, key), 256))
  return TorchPeer(spec, params) if name == 'torch' else HFPeer(spec)
