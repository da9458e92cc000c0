"""BLEU against the sacrebleu command line on real newstest2014 text; perplexity scoring on hand-made
batches against a direct computation."""

import json
import math
import random
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import cli
from mqa_repro import config as cfg
from mqa_repro.evaluation import bleu as bleu_lib
from mqa_repro.evaluation import perplexity as ppl_lib
from mqa_repro.nn import transformer as mdl
from mqa_repro.training import losses


def _damaged(lines, seed=0):
  """A plausible 'system output': words dropped and neighbours swapped, some lines left intact."""
  rng = random.Random(seed)
  out = []
  for line in lines:
    words = line.split()
    if rng.random() < 0.8:
      words = [w for w in words if rng.random() > 0.15]
      for i in range(len(words) - 1):
        if rng.random() < 0.1:
          words[i], words[i + 1] = words[i + 1], words[i]
    out.append(' '.join(words))
  return out


def _sacrebleu_cli(ref, hyp, tok):
  """The sacrebleu command line: score only (4 decimals), then the JSON form for the signature."""
  base = [sys.executable, '-m', 'sacrebleu', str(ref), '-i', str(hyp), '-tok', tok]
  score = float(subprocess.run(base + ['-b', '-w', '4'], check=True, capture_output=True,
                               text=True).stdout.strip())
  full = json.loads(subprocess.run(base + ['-w', '4'], check=True, capture_output=True,
                                   text=True).stdout)
  return score, full['signature']


def test_bleu_equals_the_sacrebleu_command_line(shared_data, tmp_path):
  refs = (shared_data / 'wmt14_en_de' / 'newstest2014.de').read_text(encoding='utf-8').split('\n')[:200]
  hyps = _damaged(refs)
  ref_file, hyp_file = tmp_path / 'ref.de', tmp_path / 'hyp.de'
  ref_file.write_text('\n'.join(refs) + '\n', encoding='utf-8')
  hyp_file.write_text('\n'.join(hyps) + '\n', encoding='utf-8')
  ours = bleu_lib.bleu(hyps, refs)
  for tok in ('intl', '13a'):
    score, signature = _sacrebleu_cli(ref_file, hyp_file, tok)
    assert ours[tok]['score'] == pytest.approx(score, abs=1e-4), tok
    assert ours[tok]['signature'] == signature
    assert f'tok:{tok}' in signature and 'nrefs:1' in signature
  assert 20 < ours['intl']['score'] < 95                   # damaged, but far from empty
  # the CLI: --hyp/--ref prints both and writes JSON with the signatures
  out = tmp_path / 'bleu.json'
  assert cli.main(['evaluate', '--hyp', str(hyp_file), '--ref', str(ref_file), '--json', str(out)]) == 0
  saved = json.loads(out.read_text())
  assert saved['bleu']['intl']['score'] == pytest.approx(ours['intl']['score'])
  assert saved['provenance']['git_commit']


def test_bleu_refuses_mismatched_line_counts(tmp_path, capsys):
  with pytest.raises(ValueError, match='2 hypotheses but 1 references'):
    bleu_lib.bleu(['a', 'b'], ['a'])
  (tmp_path / 'h').write_text('a\nb\n')
  (tmp_path / 'r').write_text('a\n')
  assert cli.main(['evaluate', '--hyp', str(tmp_path / 'h'), '--ref', str(tmp_path / 'r')]) == 2
  assert 'references' in capsys.readouterr().err


def test_evaluate_cli_reads_stdin_and_names_a_missing_reference(tmp_path, monkeypatch, capsys):
  import io
  import types
  (tmp_path / 'r').write_text('a b c d e\n')
  monkeypatch.setattr(sys, 'stdin', types.SimpleNamespace(buffer=io.BytesIO(b'a b c d e\n')))
  assert cli.main(['evaluate', '--hyp', '-', '--ref', str(tmp_path / 'r')]) == 0
  assert 'BLEU (intl) = 100.00' in capsys.readouterr().out
  assert cli.main(['evaluate', '--hyp', str(tmp_path / 'r'), '--ref', str(tmp_path / 'nope')]) == 2
  err = capsys.readouterr().err
  assert f'--ref {tmp_path / "nope"}: no such file' in err and 'Errno' not in err
  (tmp_path / 'bad').write_bytes(b'caf\xe9\n')
  assert cli.main(['evaluate', '--hyp', str(tmp_path / 'bad'), '--ref', str(tmp_path / 'r')]) == 2
  assert 'bad:1: not valid UTF-8' in capsys.readouterr().err


def _tiny(task):
  c = cfg.row_config(task, 'mqa', 'tiny')
  c.model.update(dtype='float32', vocab_size=32, max_length=16, d_model=16, qk_dim=4, v_dim=4, d_ff=32,
                 decoder_layers=1, encoder_layers=1 if task == 'translate' else 0)
  c.data.max_length = 16
  model = mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  batch = {'targets': np.ones((1, 4), np.int32)}
  if task == 'translate':
    batch['inputs'] = batch['targets']
  return c, model, nn.meta.unbox(model.init(jax.random.PRNGKey(0), batch)['params'])


def _packed_batch(task, rng):
  """Two rows: row 0 packs two examples, row 1 holds one and padding."""
  t = np.array([[5, 6, 1, 7, 8, 9, 1, 0], [10, 11, 12, 1, 0, 0, 0, 0]], np.int32)
  seg = np.array([[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 0, 0, 0, 0]], np.int32)
  pos = np.array([[0, 1, 2, 0, 1, 2, 3, 0], [0, 1, 2, 3, 0, 0, 0, 0]], np.int32)
  batch = {'targets': t, 'targets_segmentation': seg, 'targets_position': pos}
  if task == 'translate':
    batch.update(inputs=rng.integers(4, 32, t.shape).astype(np.int32) * (seg > 0),
                 inputs_segmentation=seg, inputs_position=pos)
  return batch


class _FakeData:
  """The TaskData methods evaluate uses."""

  def __init__(self, batches, words, texts=None):
    self.batches, self.words, self.texts = batches, words, texts

  def eval_batches(self, split, batch_size=None):
    return iter(self.batches)

  def word_count(self, split):
    return self.words

  def eval_texts(self, split):
    return self.texts


@pytest.mark.parametrize('task', ['translate', 'lm'])
def test_score_and_perplexity_on_hand_made_batches(task):
  c, model, params = _tiny(task)
  rng = np.random.default_rng(0)
  batches = [_packed_batch(task, rng), _packed_batch(task, rng)]
  got = ppl_lib.score(model, params, batches)
  # direct: per-token NLL of the real targets, from the plain forward pass
  want_nll, want_tokens = 0.0, 0
  for batch in batches:
    logits = model.apply({'params': params}, batch)
    nll = np.asarray(losses.token_nll(logits, jnp.asarray(batch['targets'])))
    real = batch['targets'] != 0
    want_nll += float(nll[real].sum())
    want_tokens += int(real.sum())
  assert got['tokens'] == want_tokens == 22
  assert got['nll_sum'] == pytest.approx(want_nll, rel=1e-5)
  # an untrained model is close to uniform over the 32 ids
  assert abs(got['nll_sum'] / got['tokens'] - math.log(32)) < 1.0
  p = ppl_lib.perplexity(c, params, _FakeData(batches, words=10), 'dev')
  assert p['ln_ppl_per_subword'] == pytest.approx(want_nll / 22, rel=1e-5)
  if task == 'lm':
    assert p['word_perplexity'] == pytest.approx(math.exp(want_nll / 10), rel=1e-5)
  else:
    assert 'word_perplexity' not in p


def test_evaluate_cli_on_a_checkpoint(tmp_path, monkeypatch, capsys):
  """--workdir: ln(PPL) from the data layer's eval batches, and --bleu decodes the split's sources.
  The checkpoint loader and the data layer are replaced by stand-ins (their own tests cover them)."""
  from mqa_repro.training import checkpoint
  from mqa_repro.data import pipeline
  from mqa_repro.data.tokenizer import train_sentencepiece
  lines = [f'w{i % 7} x{i % 5} y{i % 3} z{i % 11}' for i in range(200)]
  tok = train_sentencepiece(lines, 28, tmp_path / 'vocab.model')   # < the model's 32 ids
  c, model, params = _tiny('translate')
  c.decode.batch_size, c.decode.beam_size = 2, 2
  (tmp_path / 'config.json').write_text(checkpoint.config_to_json(c))
  monkeypatch.setattr(checkpoint, 'load_for_inference', lambda *a, **kw: (c, params, tok))
  rng = np.random.default_rng(0)
  data = _FakeData([_packed_batch('translate', rng)], 10, (lines[:3], lines[3:6]))
  monkeypatch.setattr(pipeline, 'load_task_data', lambda task, cfg, workdir, **kw: data)
  out = tmp_path / 'eval.json'
  assert cli.main(['evaluate', '--workdir', str(tmp_path), '--split', 'dev', '--bleu', '--json',
                   str(out)]) == 0
  result = json.loads(out.read_text())['checkpoint']
  assert result['perplexity']['tokens'] == 11
  assert result['bleu']['intl']['signature'].startswith('nrefs:1|case:mixed|eff:no|tok:intl')
  assert result['decode']['lines'] == 3
  assert 'ln(PPL) per subword' in capsys.readouterr().out


def test_paired_bootstrap_p_values():
  refs = [f'das ist der satz nummer {i} mit einigen worten darin .' for i in range(60)]
  good = [r if i % 3 else r.replace('satz', 'text') for i, r in enumerate(refs)]
  bad = [' '.join(r.split()[:3]) for r in refs]
  junk_a, junk_b = [f'x{i}' for i in range(60)], [f'y{i}' for i in range(60)]
  out = bleu_lib.paired_bootstrap(('base', good), [('copy', good), ('bad', bad)], refs, samples=200)
  assert out['copy']['bleu']['p_value'] == 1.0 and out['bad']['bleu']['p_value'] < 0.01
  assert out['bad']['bleu']['score'] < out['base']['bleu']['score']
  # BLEU 0 on both: every resample ties, which sacrebleu alone would call significant (p = 1/201)
  out = bleu_lib.paired_bootstrap(('base', junk_a), [('other', junk_b)], refs, samples=200)
  assert out['other']['bleu']['score'] == out['base']['bleu']['score'] == 0.0
  assert out['other']['bleu']['p_value'] == 1.0
