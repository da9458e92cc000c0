"""Greedy and beam search against independent references: the full (uncached) forward pass, brute
force enumeration, and the output-format rules. Tiny float32 models, so the whole file runs in seconds."""

import functools
import itertools
import math
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro.decoding import batch as decode_batch
from mqa_repro.decoding import search
from mqa_repro.nn import kv_cache
from mqa_repro.nn import transformer as mdl
from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_sentencepiece


def _tiny(task, row, *, vocab=64, max_length=32, window=None, layers=1):
  c = cfg.row_config(task, row, 'tiny')
  c.model.update(dtype='float32', vocab_size=vocab, max_length=max_length, window=window,
                 d_model=32, qk_dim=8, v_dim=8, d_ff=64, decoder_layers=layers,
                 encoder_layers=layers if task == 'translate' else 0)
  c.data.max_length = max_length
  model = mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  dummy = {'targets': np.ones((1, 4), np.int32)}
  if task == 'translate':
    dummy['inputs'] = dummy['targets']
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(1), dummy)['params'])
  # At init the residual stream is mostly the token's own embedding, so a random model keeps
  # repeating its input token. Louder attention makes outputs depend on the history and the source.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: 3 * x if getattr(path[-1], 'key', None) == 'out' else x, params)
  return c, model, params


def _sources(b, s, vocab, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(4, vocab, (b, s)).astype(np.int32)
  lengths = rng.integers(2, s + 1, b)
  lengths[0] = s
  for r, n in enumerate(lengths):
    x[r, n - 1] = EOS_ID
    x[r, n:] = PAD_ID
  return x


def _bigram(vocab, seed=0, eos=0.0):
  """A fixed bias [V_prev, V] added to the logits by the previous token (both paths add it): it breaks
  what is left of a random model's repetition loops, and `eos` makes some rows stop early."""
  table = 1.5 * np.random.default_rng(seed).normal(size=(vocab, vocab)).astype(np.float32)
  table[:, EOS_ID] += eos
  return jnp.asarray(table)


def _biased(step, table, temperature=1.0):
  def s(params, cache, tokens):                  # tokens [B, 1]: the previous token
    logits, cache = step(params, cache, tokens)
    return (logits + table[tokens]) * temperature, cache
  return s


def _reference_logits(model, params, inputs, targets, table, temperature=1.0):
  """The full uncached forward pass, with the same bigram bias: [B, T, V]."""
  batch = {'targets': targets}
  if inputs is not None:
    batch['inputs'] = inputs
  prev = mdl.shift_right(jnp.asarray(targets))
  return (model.apply({'params': params}, batch) + table[prev]) * temperature


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _cache(model, params, inputs, hyps, length):
  """Encoder output -> cross K/V once per sentence; self-attention caches for `hyps` hypotheses."""
  return kv_cache.for_sources(model, params, inputs, hyps, length)


def _full_forward_greedy(model, params, inputs, b, t, limit, table, prefix):
  """Reference: at every step run the WHOLE uncached model on the prefix and take the argmax."""
  logits_at = jax.jit(lambda targets: _reference_logits(model, params, inputs, targets, table))
  out = np.full((b, t), PAD_ID, np.int32)
  done = np.zeros(b, bool)
  for i in range(t):
    logits = np.array(logits_at(jnp.asarray(out)))[:, i]   # causal: the PAD tail is never seen
    logits[:, [PAD_ID, BOS_ID]] = -np.inf
    token = logits.argmax(-1)
    if i < prefix.shape[1]:
      token = np.where(prefix[:, i] != PAD_ID, prefix[:, i], token)
    token = np.where(done, PAD_ID, token)
    out[:, i] = token
    done |= (token == EOS_ID) | (i + 1 >= limit)
    if done.all():
      break
  return out


VARIANTS = [('translate', 'mha', None), ('translate', 'mqa', None), ('translate', 'gqa2', None),
            ('translate', 'mqa_local', 3), ('lm', 'mha', None), ('lm', 'mqa', None),
            ('lm', 'gqa2', None), ('lm', 'mha', 4)]


@pytest.mark.parametrize('task,row,window', VARIANTS)
def test_compiled_greedy_equals_full_forward_argmax_and_beam_1(task, row, window):
  """Every attention variant (MHA, MQA, GQA g=2, local with window < decoded length), both models;
  per-row length limits; LM rows start from different forced prompts (``prefix``)."""
  vocab, b, t = 64, 3, 14
  _, model, params = _tiny(task, row, vocab=vocab, window=window)
  inputs = jnp.asarray(_sources(b, 7, vocab)) if task == 'translate' else None
  prefix = np.zeros((b, 2), np.int32)
  if task == 'lm':
    prefix = np.array([[5, 9], [7, 0], [11, 12]], np.int32)
  limit = np.array([t, 9, 12])
  table = _bigram(vocab, eos=1.0)
  step = _biased(decode_batch.model_step(model), table)
  greedy = jax.jit(functools.partial(search.greedy_search, step, batch_size=b, max_len=t))
  got = np.asarray(greedy(params, _cache(model, params, inputs, b, t), per_row_max_len=limit,
                          prefix=prefix))
  want = _full_forward_greedy(model, params, inputs, b, t, limit, table, prefix)
  np.testing.assert_array_equal(got, want)
  _check_format(got, limit)
  assert len(np.unique(got)) > 6, got                       # a degenerate model would test little
  if (task, row) not in (('translate', 'mqa_local'), ('lm', 'gqa2')):
    return                                   # beam 1 on two variants is enough (compile time)
  # beam search with one beam is greedy search
  beam = jax.jit(functools.partial(search.beam_search, step, batch_size=b, beam_size=1, max_len=t))
  tokens, _ = beam(params, _cache(model, params, inputs, b, t), per_row_max_len=limit, prefix=prefix)
  np.testing.assert_array_equal(tokens[:, 0], got)


def _check_format(tokens, limit):
  """EOS-terminated or truncated at the row's limit; nothing but PAD after; no PAD/BOS inside.
  tokens [B, T] or [B, W, T], limit [B]."""
  tokens = np.asarray(tokens)
  if tokens.ndim == 2:
    tokens = tokens[:, None]
  for hyps, lim in zip(tokens, limit):
    for row in hyps:
      ends = np.flatnonzero(row == EOS_ID)
      n = ends[0] + 1 if len(ends) else int((row != PAD_ID).sum())
      assert n <= lim
      assert (row[n:] == PAD_ID).all()
      assert not np.isin(row[:n], [PAD_ID, BOS_ID]).any()
      assert len(ends) or n == lim, 'a hypothesis without EOS must have reached its length limit'


def _brute_force(model, params, inputs, vocab, limit, table, temperature):
  """All sequences (EOS-ended up to the limit, or truncated at it) scored by the full forward pass,
  per sentence: (sequences best first, their scores)."""
  words = [v for v in range(vocab) if v not in (PAD_ID, BOS_ID, EOS_ID)]
  rows, seqs = [], []
  for r, lim in enumerate(limit):
    for n in range(lim + 1):
      for p in itertools.product(words, repeat=n):
        rows.append(r)
        seqs.append(list(p) + ([EOS_ID] if n < lim else []))
  rows = np.array(rows)
  targets = np.zeros((len(seqs), max(limit)), np.int32)
  for j, seq in enumerate(seqs):
    targets[j, :len(seq)] = seq
  src = None if inputs is None else np.asarray(inputs)[rows]
  logits = jax.jit(_reference_logits, static_argnums=0)(model, params, src, targets, table, temperature)
  tok_logp = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), targets[..., None], -1)[..., 0]
  lengths = np.array([len(seq) for seq in seqs])
  total = (tok_logp * (np.arange(targets.shape[1]) < lengths[:, None])).sum(1)
  score = total / ((5 + lengths) / 6) ** 0.6
  results = []
  for r in range(len(limit)):
    idx = np.flatnonzero(rows == r)
    idx = idx[np.argsort(-score[idx], kind='stable')]
    results.append(([seqs[j] for j in idx], score[idx]))
  return results


@pytest.mark.parametrize('task,row,window', [('translate', 'mqa', None), ('lm', 'mha', 2)])
def test_beam_search_equals_brute_force(task, row, window):
  """Vocabulary 8 (6 emittable tokens: 5 words + EOS), lengths <= 3, per-sentence limits 3 and 2.
  * 30 beams keep every candidate of every step (at most 5 · 6), so the W best finished hypotheses
    must be exactly the brute-force top W, scores included;
  * 4 beams on a peaky model (logits x 3) must find the brute-force best, and every returned score
    must be its sequence's brute-force score. The first run copies only the written cache slots
    (reorder='prefix', what the model wrappers use), this one gathers whole leaves ('full');
  * without the cache reorder the scores come out wrong: the checks above do see the reorder.
  The LM case uses local attention with window 2 (a ring buffer cache)."""
  vocab, b, t = 8, 2, 4                       # loop length t > every row's limit
  _, model, params = _tiny(task, row, vocab=vocab, max_length=8, window=window)
  inputs = jnp.asarray(_sources(b, 5, vocab, seed=3)) if task == 'translate' else None
  limit = np.array([3, 2])
  table = _bigram(vocab, seed=1, eos=1.0)
  runs = [(1.0, 30, 'prefix'), (3.0, 4, 'full')] + ([(1.0, 30, 'none')] if task == 'lm' else [])
  for temperature, w, reorder in runs:
    step = _biased(decode_batch.model_step(model), table, temperature)
    run = jax.jit(functools.partial(search.beam_search, step, batch_size=b, beam_size=w, max_len=t,
                                    reorder=reorder))
    tokens, scores = run(params, _cache(model, params, inputs, b * w, t), per_row_max_len=limit)
    tokens, scores = np.asarray(tokens), np.asarray(scores)
    _check_format(tokens, limit)
    brute = _brute_force(model, params, inputs, vocab, limit, table, temperature)
    if reorder == 'none':
      assert not np.allclose(scores[0], brute[0][1][:w], rtol=1e-5, atol=1e-5)
      continue
    for r, (seqs, best) in enumerate(brute):
      lookup = {tuple(s): sc for s, sc in zip(seqs, best)}
      got = [tuple(int(x) for x in row if x != PAD_ID) for row in tokens[r]]
      valid = scores[r] > -np.inf
      np.testing.assert_allclose(scores[r][valid], [lookup[g] for g, v in zip(got, valid) if v],
                                 rtol=1e-5, atol=1e-5)
      assert (np.diff(scores[r][valid]) <= 1e-6).all()                 # best first
      assert got[0] == tuple(seqs[0]), (temperature, w, r)
      if w == 30:
        k = min(w, len(seqs))
        assert valid[:k].all()
        np.testing.assert_allclose(scores[r][:k], best[:k], rtol=1e-5, atol=1e-5)
        assert got[:k] == [tuple(s) for s in seqs[:k]]


@pytest.mark.parametrize('written', [0, 1, 3, 4, 5, 11, 12, 30])
def test_prefix_reorder_equals_full_gather(written):
  """Copying only the written slots, chunk by chunk in place, equals gathering whole leaves, for a
  full-length cache (L = 12, chunks of 4), a ring buffer (L = 5: chunks of 1, wrapped when written
  > 5) and a 0-d leaf (shared by every hypothesis, left as it is)."""
  rng = np.random.default_rng(written)
  hyps, src = 6, np.array([2, 2, 0, 5, 1, 1])

  def cache(slots):
    x = rng.normal(size=(hyps, slots, 2, 3)).astype(np.float32)
    x[:, written:] = 0                           # never written yet
    return jnp.asarray(x)

  state = [{'key': cache(12), 'value': cache(12), 'shared': jnp.int32(written)},
           {'key': cache(5), 'value': cache(5)}]
  full = kv_cache.reorder_state(state, jnp.asarray(src))
  part = jax.jit(functools.partial(kv_cache.reorder_state, chunk=4))(state, jnp.asarray(src),
                                                                   jnp.int32(written))
  for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(part)):
    np.testing.assert_array_equal(a, b)


def test_eos_ends_rows_early_and_the_loop_stops():
  """A scripted step (the decoder is model-agnostic): row r emits token 4 + r for r + 1 steps, then
  EOS. Rows end at different steps, PAD follows EOS, and the loop leaves when the last row ends."""
  v, b, t = 10, 3, 10
  calls = []

  def step(params, cache, tokens):
    jax.debug.callback(lambda: calls.append(1))
    i = cache['position']
    r = cache['state']['row'] % b                                   # sentence of each hypothesis
    logits = jnp.where(jnp.arange(v) == (4 + r)[:, None], 0.0, -5.0)
    logits = jnp.where((i >= r + 1)[:, None] & (jnp.arange(v) == EOS_ID), 5.0, logits)
    return logits[:, None], dict(cache, position=i + 1)

  def cache(hyps):
    return {'state': {'row': jnp.arange(hyps) // (hyps // b)}, 'memory': None,
            'position': jnp.zeros((), jnp.int32)}

  out = np.asarray(jax.jit(functools.partial(search.greedy_search, step, batch_size=b,
                                             max_len=t))(None, cache(b)))
  jax.effects_barrier()
  np.testing.assert_array_equal(out[:, :4], [[4, EOS_ID, 0, 0], [5, 5, EOS_ID, 0], [6, 6, 6, EOS_ID]])
  assert (out[:, 4:] == PAD_ID).all()
  assert len(calls) == 4, 'the loop should stop once every row has emitted EOS'
  w = 2
  tokens, scores = jax.jit(functools.partial(search.beam_search, step, batch_size=b, beam_size=w,
                                             max_len=t, alpha=0.0))(None, cache(b * w))
  tokens = np.asarray(tokens)
  _check_format(tokens, np.full(b, t))
  np.testing.assert_array_equal(tokens[:, 0, :4], out[:, :4])


def test_translate_batch_caps_length_at_the_position_table(tiny_translator):
  c, params, tok, _ = tiny_translator
  model = mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  inputs = _sources(4, 24, tok.vocab_size, seed=7)  # 1.5 * 24 + 10 = 46 > max_length 24
  limit = decode_batch.decode_lengths((inputs != PAD_ID).sum(1), 24)
  assert limit[0] == 24 and (limit <= 24).all()
  out = decode_batch.translate_batch(model, params, inputs, beam_size=2, vocab_size=tok.vocab_size)
  assert out.shape == (4, 24)
  _check_format(out, limit)
  assert out.max() < tok.vocab_size < 128          # the model's vocabulary padding is never emitted


def test_continue_batch_keeps_the_prompt():
  vocab = 64
  _, model, params = _tiny('lm', 'mqa', vocab=vocab, max_length=24)
  prompts = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], np.int32)
  for beam in (1, 2):
    out = decode_batch.continue_batch(model, params, prompts, max_new_tokens=5, beam_size=beam)
    np.testing.assert_array_equal(out[0, :4], [5, 6, 7, 8])
    np.testing.assert_array_equal(out[1, :2], [9, 10])
    assert (out[0, 9:] == PAD_ID).all() and (out[1, 7:] == PAD_ID).all()


# --------------------------------------------------------------------------------------------------
# decode_file / the CLI's library function.


@pytest.fixture(scope='module')
def tiny_translator(tmp_path_factory):
  rng = np.random.default_rng(0)
  words = [''.join(rng.choice(list('abcdefghijklmnop'), rng.integers(2, 7))) for _ in range(60)]
  lines = [' '.join(rng.choice(words, rng.integers(3, 12))) for _ in range(300)]
  tok = train_sentencepiece(lines, 100, tmp_path_factory.mktemp('spm') / 'vocab.model')
  c, model, params = _tiny('translate', 'mqa', vocab=128, max_length=24)
  c.decode.batch_size = 3
  return c, params, tok, words


def test_decode_file_keeps_order_with_empty_long_and_ragged_batches(tiny_translator, tmp_path):
  """8 lines: 2 empty, 1 far over max_length; 6 to decode in batches of 4 (the last one short).
  Decoding the file reversed must give the reversed output: sorting and bucketing by length never
  mix up which hypothesis belongs to which line (the model's output depends on its input)."""
  from mqa_repro.decoding import text as decoding_text
  c, params, tok, words = tiny_translator
  rng = np.random.default_rng(1)
  lines = [' '.join(rng.choice(words, n)) for n in (3, 8, 2, 5, 4)]
  lines.insert(1, '')
  lines.insert(4, '   ')
  lines.insert(6, ' '.join(rng.choice(words, 60)))          # far beyond max_length=24 tokens
  outputs = {}
  for beam in (1, 2):
    for name, text in (('fwd', lines), ('rev', lines[::-1])):
      src, dst = tmp_path / f'{name}.txt', tmp_path / f'{name}.{beam}.out'
      src.write_text('\n'.join(text) + '\n')
      stats = decoding_text.decode_file(c, params, tok, src, dst, beam_size=beam, batch_size=4,
                                        log=lambda m: None)
      assert stats['truncated'] == 1 and stats['empty'] == 2 and stats['lines'] == 8
      assert stats['batches'] == 2
      out = dst.read_text().split('\n')
      assert out[-1] == '' and len(out) - 1 == len(lines)   # one line per input, newline-ended
      outputs[name] = out[:-1]
    fwd, rev = outputs['fwd'], outputs['rev']
    assert fwd == rev[::-1], beam
    assert fwd[1] == '' and fwd[4] == ''
    decoded = [fwd[i] for i in (0, 2, 3, 5, 6, 7)]
    assert all(decoded) and len(set(decoded)) >= 4, decoded  # outputs depend on the input


# --------------------------------------------------------------------------------------------------
# Determinism: the shipped bfloat16 model, decoded in config.decode.dtype = 'float32' (the default).


@pytest.fixture(scope='module')
def bf16_models(tiny_translator):
  """{task: (config, params)} of random bfloat16 models (the shipped setting) for the fixture's
  tokenizer, and 64 lines of its words."""
  _, _, tok, words = tiny_translator
  out = {}
  for task, row in (('translate', 'mqa'), ('lm', 'gqa2')):
    c, _, params = _tiny(task, row, vocab=128, max_length=24, layers=2)
    c.model.dtype = 'bfloat16'
    out[task] = c, params
  rng = np.random.default_rng(2)
  return out, tok, [' '.join(rng.choice(words, rng.integers(1, 9))) for _ in range(64)]


@pytest.mark.parametrize('task', ['translate', 'lm'])
def test_hypotheses_do_not_depend_on_the_batch_size(task, bf16_models):
  """Batches of 1, 7 and 64 lines give the same hypotheses, greedy and beam. In bfloat16 they did
  not (issue 16: 9 of 51 lines greedy): a row's logits came out of differently shaped, differently
  fused matmuls, rounded to bf16, and a near-tie flipped."""
  from mqa_repro.decoding import text
  (_, tok, lines), (c, params) = bf16_models, bf16_models[0][task]
  assert c.decode.dtype == 'float32'
  for beam in (1, 3):
    outputs = [text.decode_lines(c, params, tok, lines, beam_size=beam, batch_size=n,
                                 max_new_tokens=6, log=lambda m: None)[0] for n in (1, 7, 64)]
    assert outputs[0] == outputs[1] == outputs[2], beam
    assert len(set(outputs[0])) > 16                    # the hypotheses depend on the input


@pytest.mark.parametrize('task', ['translate', 'lm'])
@pytest.mark.parametrize('decode_dtype', ['float32', ''])
def test_beam_search_with_one_beam_is_greedy_search(task, decode_dtype, bf16_models):
  """In the deterministic mode and in plain bfloat16 alike: 64 rows, token for token, and the
  score is the greedy hypothesis' log-probability under the length penalty."""
  (_, tok, lines), (c, params) = bf16_models, bf16_models[0][task]
  model, precision = decode_batch.decode_model(mdl.make_model(c), decode_dtype)
  ids = [tok.encode(line) + ([EOS_ID] if task == 'translate' else []) for line in lines]
  inputs = np.zeros((len(ids), 16), np.int32)
  for r, x in enumerate(ids):
    inputs[r, :len(x)] = x
  b, t = len(ids), 20
  limit = np.full(b, t)

  @functools.partial(jax.jit, static_argnames='beam')
  def run_search(params, inputs, beam):
    if task == 'translate':
      cache = _cache(model, params, inputs, b, t)
      prefix = None
    else:
      cache, prefix = _cache(model, params, None, b, t), inputs
    step = decode_batch.model_step(model)
    if beam:
      return search.beam_search(step, params, cache, b, 1, t, 0.6, limit, prefix, tok.vocab_size)
    return search.greedy_search(step, params, cache, b, t, limit, prefix, tok.vocab_size,
                                with_scores=True)
  with jax.default_matmul_precision(precision):
    greedy, logp = run_search(params, inputs, False)
    beam, score = run_search(params, inputs, True)
  np.testing.assert_array_equal(beam[:, 0], greedy)
  lengths = (np.asarray(greedy) != PAD_ID).sum(1)
  np.testing.assert_allclose(score[:, 0], logp / search.length_penalty(lengths, 0.6), rtol=1e-6)
  assert len({tuple(r) for r in np.asarray(greedy)}) > 16


def _fake_run(monkeypatch, workdir, loaded):
  """A run directory holding only config.json, and a stand-in for the checkpoint loader returning
  `loaded` = (config, params, tokenizer) (the loader's own tests cover it)."""
  from mqa_repro.training import checkpoint
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'config.json').write_text(checkpoint.config_to_json(loaded[0]))
  calls = []

  def load_for_inference(workdir, step=None, log=print, mesh=None, overrides=()):
    calls.append(list(overrides))
    return loaded
  monkeypatch.setattr(checkpoint, 'load_for_inference', load_for_inference)
  return calls


def test_decode_cli_main_end_to_end(tiny_translator, tmp_path, monkeypatch, capsys):
  from mqa_repro import cli
  c, params, tok, words = tiny_translator
  calls = _fake_run(monkeypatch, tmp_path, (c, params, tok))
  src = tmp_path / 'in.en'
  src.write_text(f'{words[0]} {words[1]}\n\n{words[2]}\n')
  rc = cli.main(['decode', '--workdir', str(tmp_path), '--input', str(src), '--output',
                 str(tmp_path / 'out.de'), '--beam', '2', '--batch-size', '4'])
  assert rc == 0
  out = (tmp_path / 'out.de').read_text().split('\n')
  assert len(out) == 4 and out[1] == '' and out[3] == ''
  assert '3 lines (1 empty, 0 truncated)' in capsys.readouterr().err
  assert cli.main(['decode', '--workdir', str(tmp_path), '--input', str(src), '--output',
                   str(tmp_path / 'out2.de'), '--decode-dtype', 'model']) == 0
  assert calls[-1] == ['--config.decode.dtype=']     # the run's saved config, changed for this decode
  assert c.decode.dtype == 'float32'


def test_decode_cli_nbest_stdin_stdout_overrides_and_progress(tiny_translator, tmp_path, monkeypatch,
                                                              capsys):
  """--input - reads stdin, --output - writes stdout, --nbest N writes N scored lines per input (the
  first the 1-best), --config.* reaches the loader, --progress prints a line per batch."""
  import io
  import types
  from mqa_repro import cli
  c, params, tok, words = tiny_translator
  calls = _fake_run(monkeypatch, tmp_path, (c, params, tok))
  lines = [f'{words[0]} {words[1]}', '', f'{words[2]} {words[3]} {words[4]}']
  stdin = types.SimpleNamespace(buffer=io.BytesIO(('\n'.join(lines) + '\n').encode()))
  monkeypatch.setattr(sys, 'stdin', stdin)
  assert cli.main(['decode', '--workdir', str(tmp_path), '--input', '-', '--output', '-', '--beam', '3',
                   '--nbest', '2', '--batch-size', '1', '--progress',
                   '--config.model.attention_impl=xla']) == 0
  captured = capsys.readouterr()
  rows = [line.split('\t') for line in captured.out.splitlines()]
  assert [int(r[0]) for r in rows] == [0, 0, 1, 1, 2, 2]
  scores = [float(r[1]) for r in rows]
  assert scores[0] >= scores[1] and scores[4] >= scores[5] and math.isnan(scores[2])
  assert calls[-1] == ['--config.model.attention_impl=xla']
  assert '2/2 sentences' in captured.err and 'sentences/s' in captured.err
  # the 1-best of the n-best list is the hypothesis a plain decode writes
  monkeypatch.setattr(sys, 'stdin', types.SimpleNamespace(buffer=io.BytesIO(
      ('\n'.join(lines) + '\n').encode())))
  assert cli.main(['decode', '--workdir', str(tmp_path), '--input', '-', '--beam', '3']) == 0
  best = capsys.readouterr().out.splitlines()
  assert best[0] == rows[0][2] and best[2] == rows[4][2]


@pytest.mark.parametrize('args,message', [
    (['--nbest', '5', '--beam', '2'], '--nbest 5 needs a beam of at least 5'),
    (['--config.model.num_heads=4'], 'changes the shape of the parameters'),
    (['--config.model.attention_impl=cuda'], 'config.model.attention_impl must be one of'),
    (['--config.decode.bogus=1'], 'decode has no field'),
])
def test_decode_cli_checks_flags_and_overrides_before_loading(tiny_translator, tmp_path, monkeypatch,
                                                              capsys, args, message):
  from mqa_repro import cli
  c, params, tok, words = tiny_translator
  calls = _fake_run(monkeypatch, tmp_path, (c, params, tok))
  src = tmp_path / 'in.en'
  src.write_text(f'{words[0]}\n')
  assert cli.main(['decode', '--workdir', str(tmp_path), '--input', str(src), *args]) == 2
  assert message in capsys.readouterr().err and not calls


def test_decode_warns_once_about_length_caps(tiny_translator):
  """Every batch of one call may hit the position table; the warning comes once, with the count."""
  from mqa_repro.decoding import text
  c, params, tok, words = tiny_translator
  rng = np.random.default_rng(3)
  lines = [' '.join(rng.choice(words, 12)) for _ in range(6)]   # 1.5 * len + 10 > max_length 24
  logs = []
  _, stats = text.decode_lines(c, params, tok, lines, beam_size=1, batch_size=2, log=logs.append)
  assert stats['batches'] == 3 and stats['capped'] > 0
  warnings = [line for line in logs if 'max_length' in line]
  assert len(warnings) == 1 and f"{stats['capped']} of 6" in warnings[0]


def test_decode_cli_main_reports_missing_run(tmp_path, capsys):
  from mqa_repro import cli
  src = tmp_path / 'x'
  src.write_text('a\n')
  rc = cli.main(['decode', '--workdir', str(tmp_path / 'nope'), '--input', str(src), '--output', 'y'])
  assert rc == 2 and 'not found' in capsys.readouterr().err


def test_decode_cli_refuses_non_utf8_input_naming_file_and_line_before_loading(tmp_path, monkeypatch,
                                                                               capsys):
  """The same message training text gets (data/sources.py), exit 2, and no checkpoint loaded."""
  from mqa_repro import cli
  from mqa_repro.training import checkpoint

  def load_for_inference(*args, **kwargs):
    raise AssertionError('the checkpoint was loaded before the input was read')
  monkeypatch.setattr(checkpoint, 'load_for_inference', load_for_inference)
  src = tmp_path / 'in.en'
  src.write_bytes('fine\nstill fine \u00e9\n'.encode() + b'caf\xe9 latin-1\n')
  rc = cli.main(['decode', '--workdir', str(tmp_path), '--input', str(src), '--output',
                 str(tmp_path / 'out.de')])
  err = capsys.readouterr().err
  assert rc == 2 and f'{src}:3: not valid UTF-8' in err, err
  assert cli.main(['decode', '--workdir', str(tmp_path), '--input', str(tmp_path / 'nope'), '--output',
                   str(tmp_path / 'out.de')]) == 2
  assert 'not found' in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(['decode', '--workdir', str(tmp_path), '--input', str(src), '--output', 'o', '--alpha', '-1'])
