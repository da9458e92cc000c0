"""Tokenize / filter / pack / batch: exactness of packing, masks, determinism, resume, hosts, eval."""

import collections
import json
import os
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mqa_repro.cli import data as cli
from mqa_repro.data import examples as examples_lib, packing, pipeline
from mqa_repro.data.datasets import offline
from mqa_repro.data.tokenizer import EOS_ID

EN_WORDS = 'the a house cat dog runs sees big small red green today because and never'.split()
DE_WORDS = 'das ein Haus Katze Hund läuft sieht groß klein rot grün heute weil und nie'.split()
TRANSLATE_KEYS = ('inputs', 'inputs_segmentation', 'inputs_position',
                  'targets', 'targets_segmentation', 'targets_position')
LM_KEYS = ('targets', 'targets_segmentation', 'targets_position')


def sentence(rng: random.Random, words: list[str], n: int) -> str:
  return ' '.join(rng.choice(words) for _ in range(n))


def write_corpus(directory: Path, n: int = 300, seed: int = 0) -> Path:
  """A line-aligned en/de corpus (and an English one) with lengths from 1 to ~40 words."""
  rng = random.Random(seed)
  en, de = [], []
  for _ in range(n):
    k = rng.choice([1, 2, 3, 5, 8, 12, 20, 40])
    en.append(sentence(rng, EN_WORDS, k))
    de.append(sentence(rng, DE_WORDS, max(1, k + rng.randint(-1, 2))))
  directory.mkdir(parents=True, exist_ok=True)
  (directory / 'train.en').write_text('\n'.join(en) + '\n')
  (directory / 'train.de').write_text('\n'.join(de) + '\n')
  (directory / 'dev.en').write_text('\n'.join(en[:37]) + '\n')
  (directory / 'dev.de').write_text('\n'.join(de[:37]) + '\n')
  (directory / 'mono.txt').write_text('\n'.join(en) + '\n')
  (directory / 'mono_dev.txt').write_text('\n'.join(en[:37]) + '\n')
  return directory


def make_config(corpus: Path, task: str, **overrides):
  c = pipeline.default_data_config(task)
  c.source = 'text'
  if task == 'translate':
    c.train_files, c.dev_files, c.test_files = str(corpus / 'train'), str(corpus / 'dev'), str(corpus / 'dev')
  else:
    c.train_files, c.dev_files, c.test_files = (str(corpus / 'mono.txt'), str(corpus / 'mono_dev.txt'),
                                                str(corpus / 'mono_dev.txt'))
  c.vocab_size = 64
  c.max_length = 32
  c.batch_size = 4
  c.eval_batch_size = 4
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.fixture(scope='module')
def corpus(tmp_path_factory) -> Path:
  return write_corpus(tmp_path_factory.mktemp('corpus'))


@pytest.fixture(scope='module')
def vocab(corpus, tmp_path_factory) -> str:
  """One vocabulary for the module (training one per test would dominate the run time)."""
  wd = tmp_path_factory.mktemp('vocab_wd')
  pipeline.load_task_data('translate', make_config(corpus, 'translate'), wd, log=lambda m: None)
  return str(wd / 'vocab.model')


def load(corpus, vocab, tmp_path, task='translate', log=None, **overrides):
  c = make_config(corpus, task, vocab_path=vocab, **overrides)
  return pipeline.load_task_data(task, c, tmp_path, log=log or (lambda m: None))


def take(it, n):
  return [next(it) for _ in range(n)]


def segments(batch: dict, side: str) -> list[tuple[int, int, np.ndarray]]:
  """(row, segment id, tokens) of every example placed in a packed batch."""
  out = []
  for r in range(batch[side].shape[0]):
    seg = batch[f'{side}_segmentation'][r]
    for s in np.unique(seg[seg > 0]):
      (cols,) = np.nonzero(seg == s)
      assert np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols))), 'segment not contiguous'
      assert np.array_equal(batch[f'{side}_position'][r, cols], np.arange(len(cols)))
      out.append((r, int(s), batch[side][r, cols]))
  return out


def check_batch_layout(batch: dict, keys, rows: int, max_length: int):
  assert tuple(batch) == keys
  for k in keys:
    assert batch[k].shape == (rows, max_length) and batch[k].dtype == np.int32
  for side in {k.split('_')[0] for k in keys}:
    seg, tok, pos = batch[f'{side}_segmentation'], batch[side], batch[f'{side}_position']
    assert np.all((tok == 0) == (seg == 0)) and np.all(pos[seg == 0] == 0)
    for r in range(rows):  # segment ids are 1, 2, 3 ... left to right, padding only at the end
      nz = seg[r][seg[r] > 0]
      assert np.all(np.diff(nz) >= 0) and (len(nz) == 0 or (nz[0] == 1 and np.all(np.diff(nz) <= 1)))
      assert np.all(seg[r][len(nz):] == 0)
    for _, _, toks in segments(batch, side):
      assert toks[-1] == EOS_ID and EOS_ID not in toks[:-1]


# ---- packing -------------------------------------------------------------------------------------


def test_greedy_row_starts_both_sides():
  starts = packing.greedy_row_starts([np.array([3, 3, 3, 1]), np.array([1, 1, 4, 1])], 6)
  # Row 0: ex 0+1 (inputs 6, targets 2); ex 2 would overflow inputs; row 1: ex 2+3 (4, 5).
  assert starts.tolist() == [0, 2, 4]
  starts = packing.greedy_row_starts([np.array([1, 1, 1]), np.array([5, 2, 1])], 6)
  assert starts.tolist() == [0, 1, 3]  # the TARGET side forces the second row
  with pytest.raises(ValueError, match='longer than max_length'):
    packing.greedy_row_starts([np.array([7])], 6)


def test_packing_keeps_every_token_exactly_once(corpus, vocab, tmp_path):
  data = load(corpus, vocab, tmp_path)
  ex, keep = data._train
  stream = data.train_stream()
  rows = stream.rows_in_epoch(0)
  idx, row_of = stream.rows(0, rows)                 # all of epoch 0 as one batch
  batch = packing.pack_batch(ex.sides, keep[idx], row_of, rows, 32)
  check_batch_layout(batch, TRANSLATE_KEYS, rows, 32)
  # Each (row, segment) holds one example's inputs AND targets: reconstruct pairs and compare.
  ins = {(r, s): t.tolist() for r, s, t in segments(batch, 'inputs')}
  tgs = {(r, s): t.tolist() for r, s, t in segments(batch, 'targets')}
  assert ins.keys() == tgs.keys()
  packed = collections.Counter((tuple(ins[k]), tuple(tgs[k])) for k in ins)
  expected = collections.Counter((tuple(ex.inputs[i].tolist()), tuple(ex.targets[i].tolist())) for i in keep)
  assert packed == expected
  assert sum(packed.values()) == len(keep) > 100
  n_tokens = int((batch['inputs'] > 0).sum() + (batch['targets'] > 0).sum())
  assert n_tokens == int(ex.inputs.lengths[keep].sum() + ex.targets.lengths[keep].sum())
  assert (batch['targets_segmentation'].max(axis=1) > 1).mean() > 0.5   # rows really are packed


def test_attention_mask_from_segments_blocks_cross_example_attention(corpus, vocab, tmp_path):
  """A toy causal attention over a packed row equals the same attention over each example alone."""
  data = load(corpus, vocab, tmp_path)
  batch = next(data.train_batches())
  rng = np.random.default_rng(0)
  seg, pos = batch['targets_segmentation'], batch['targets_position']
  n = seg.shape[1]
  mask = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] > 0)
  causal = mask & np.tril(np.ones((n, n), bool))
  q, k, v = (rng.normal(size=(*seg.shape, 8)) for _ in range(3))

  def attend(q, k, v, m):
    logits = np.where(m, np.einsum('...td,...sd->...ts', q, k), -1e30)
    w = np.exp(logits - logits.max(-1, keepdims=True)) * m
    return np.einsum('...ts,...sd->...td', w / np.maximum(w.sum(-1, keepdims=True), 1e-30), v)

  packed = attend(q, k, v, causal)
  for r in range(seg.shape[0]):
    for s in np.unique(seg[r][seg[r] > 0]):
      cols = np.nonzero(seg[r] == s)[0]
      alone = attend(q[r, cols], k[r, cols], v[r, cols], np.tril(np.ones((len(cols),) * 2, bool)))
      np.testing.assert_allclose(packed[r, cols], alone, rtol=1e-12)
  # And the mask itself: no allowed pair crosses segments; a position attends to its own prefix only.
  rr, ii, jj = np.nonzero(causal)
  assert np.all(seg[rr, ii] == seg[rr, jj]) and np.all(pos[rr, jj] <= pos[rr, ii])
  # Cross attention (decoder targets -> encoder inputs) pairs segments the same way.
  cross = (batch['targets_segmentation'][:, :, None] == batch['inputs_segmentation'][:, None, :]) & (
      batch['targets_segmentation'][:, :, None] > 0)
  rr, ii, jj = np.nonzero(cross)
  assert np.all(batch['inputs_segmentation'][rr, jj] == batch['targets_segmentation'][rr, ii])


def test_lm_batches_and_unpacked_mode(corpus, vocab, tmp_path):
  data = load(corpus, vocab, tmp_path / 'lm', task='lm')
  batch = next(data.train_batches())
  check_batch_layout(batch, LM_KEYS, 4, 32)
  data = load(corpus, vocab, tmp_path / 'nopack', task='lm', pack=False)
  batch = next(data.train_batches())
  check_batch_layout(batch, LM_KEYS, 4, 32)
  assert batch['targets_segmentation'].max() == 1   # one example per row


def test_long_examples_are_dropped_and_counted_not_truncated(corpus, vocab, tmp_path):
  messages = []
  data = load(corpus, vocab, tmp_path, log=messages.append, max_length=16)
  ex, keep = data._train
  too_long = int((~ex.fits(16)).sum())
  assert too_long > 0 and len(keep) == len(ex) - too_long
  assert any(f'dropped {too_long} of {len(ex)} examples longer than max_length=16' in m for m in messages)
  for batch in take(data.train_batches(), 5):
    for r, s, toks in segments(batch, 'targets'):
      assert toks[-1] == EOS_ID   # whole examples only


# ---- determinism, resume, hosts ------------------------------------------------------------------


def test_same_seed_same_batches_and_seed_matters(corpus, vocab, tmp_path):
  a = take(load(corpus, vocab, tmp_path / 'a').train_batches(), 6)
  b = take(load(corpus, vocab, tmp_path / 'b').train_batches(), 6)
  c = take(load(corpus, vocab, tmp_path / 'c', seed=1).train_batches(), 6)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert any(not np.array_equal(x['targets'], z['targets']) for x, z in zip(a, c))


def test_resume_equals_uninterrupted_across_epoch_boundary(corpus, vocab, tmp_path):
  rows0 = load(corpus, vocab, tmp_path).train_stream().rows_in_epoch(0)
  bs = next(b for b in (6, 7, 5, 9, 11) if rows0 % b)   # a batch must straddle the epoch boundary
  data = load(corpus, vocab, tmp_path, batch_size=bs)
  stream = data.train_stream()
  boundary = rows0 // bs                                # this step's rows span epochs 0 and 1
  assert stream.locate(boundary * bs)[0] == 0 and stream.locate(boundary * bs + bs - 1)[0] == 1
  full = take(data.train_batches(), boundary + 3)
  fresh = load(corpus, vocab, tmp_path, batch_size=bs)  # as a restarted process would
  for s in (0, 1, boundary - 1, boundary, boundary + 1, boundary + 2):
    resumed = next(fresh.train_batches(start_step=s))
    for k in full[s]:
      np.testing.assert_array_equal(resumed[k], full[s][k], err_msg=f'step {s} key {k}')
  # Epoch 1 is a different shuffle of the same examples.
  assert not np.array_equal(stream.epoch(0)[0], stream.epoch(1)[0])
  assert sorted(stream.epoch(0)[0]) == sorted(stream.epoch(1)[0])


def test_host_slices_concatenate_to_the_global_batch(corpus, vocab, tmp_path):
  c = make_config(corpus, 'translate', vocab_path=vocab, batch_size=6, eval_batch_size=6)
  quiet = lambda m: None
  whole = pipeline.load_task_data('translate', c, tmp_path, log=quiet)
  hosts = [pipeline.load_task_data('translate', c, tmp_path, host_index=i, host_count=3, log=quiet)
           for i in range(3)]
  for s in (0, 7, 40):
    g = next(whole.train_batches(s))
    parts = [next(h.train_batches(s)) for h in hosts]
    for k in g:
      assert parts[0][k].shape == (2, 32)
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), g[k])
  for g, *parts in zip(whole.eval_batches('dev'), *(h.eval_batches('dev') for h in hosts)):
    for k in g:
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), g[k])
  with pytest.raises(ValueError, match='multiple of the host count'):
    pipeline.load_task_data('translate', c, tmp_path, host_index=0, host_count=4, log=quiet)


# ---- eval ----------------------------------------------------------------------------------------


@pytest.mark.parametrize('pack', [True, False])
def test_eval_batches_cover_each_example_once(corpus, vocab, tmp_path, pack):
  data = load(corpus, vocab, tmp_path, pack=pack)
  ex, keep = data._eval('dev')
  batches = list(data.eval_batches('dev', batch_size=4))
  for b in batches:
    check_batch_layout(b, TRANSLATE_KEYS, 4, 32)
  got = [(tuple(t.tolist())) for b in batches for _, _, t in segments(b, 'targets')]
  assert got == [tuple(ex.targets[i].tolist()) for i in keep]   # file order, each exactly once
  last = batches[-1]
  empty_rows = int((last['targets_segmentation'].max(axis=1) == 0).sum())
  assert empty_rows == 4 * len(batches) - (len(keep) if not pack else
                                           sum(int(b['targets_segmentation'].max(1).astype(bool).sum())
                                               for b in batches))
  assert list(data.eval_batches('dev')) and len(list(data.eval_batches('dev', batch_size=64))) == 1


def test_eval_texts_and_word_count(corpus, vocab, tmp_path):
  data = load(corpus, vocab, tmp_path, max_length=16)
  src, ref = data.eval_texts('dev')
  en = (corpus / 'dev.en').read_text().splitlines()
  de = (corpus / 'dev.de').read_text().splitlines()
  assert (src, ref) == (en, de)                           # all sentences, in order
  ex, keep = data._eval('dev')
  assert 0 < len(keep) < len(en)                          # some are too long for eval_batches ...
  assert data.word_count('dev') == sum(len(de[i].split()) + 1 for i in keep)  # ... and not counted
  per_batch = data.eval_batch_word_counts('dev', batch_size=2)
  assert len(per_batch) == len(list(data.eval_batches('dev', batch_size=2)))
  assert sum(per_batch) == data.word_count('dev')
  for b, words in zip(data.eval_batches('dev', batch_size=2), per_batch):
    refs = [data.tokenizer.decode(t) for _, _, t in segments(b, 'targets')]
    assert words == sum(len(r.split()) + 1 for r in refs)
  lm = load(corpus, vocab, tmp_path / 'lm', task='lm', max_length=512)
  sents, same = lm.eval_texts('test')
  assert sents == same == en
  assert lm.word_count('test') == sum(len(s.split()) + 1 for s in en)
  small = load(corpus, vocab, tmp_path / 'small', task='lm', max_length=512, max_eval_examples=5)
  assert small.eval_texts('dev')[0] == en[:5] and small.word_count('dev') == sum(len(s.split()) + 1 for s in en[:5])


def test_dev_split_names_map_to_files(corpus, vocab, tmp_path):
  data = load(corpus, vocab, tmp_path, dev_split='test', test_files=str(corpus / 'train'))
  assert data.eval_texts('dev')[0] == (corpus / 'train.en').read_text().splitlines()
  data = load(corpus, vocab, tmp_path, test_files='')
  with pytest.raises(ValueError, match="no files for split 'test'"):
    data.eval_texts('test')


# ---- vocabulary, caching, sources ----------------------------------------------------------------


def test_vocab_trained_once_and_tokens_cached(corpus, tmp_path, monkeypatch):
  messages = []
  c = make_config(corpus, 'translate')
  first = pipeline.load_task_data('translate', c, tmp_path, log=messages.append)
  a = take(first.train_batches(), 3)
  assert (tmp_path / 'vocab.model').is_file() and any('training a 64-piece' in m for m in messages)
  assert len(list((tmp_path / 'data_cache').iterdir())) == 1

  def no_tokenizing(*args, **kwargs):
    raise AssertionError('re-tokenized despite the cache')
  monkeypatch.setattr(examples_lib, 'tokenize', no_tokenizing)
  messages.clear()
  second = pipeline.load_task_data('translate', c, tmp_path, log=messages.append)
  b = take(second.train_batches(), 3)
  assert any('reusing the vocabulary' in m for m in messages) and any('loaded' in m for m in messages)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_skipped_lines_are_reported_once(corpus, tmp_path):
  """The training text is read twice (vocabulary, then tokens): its skip counts are one message."""
  lines = (corpus / 'mono.txt').read_text().splitlines()
  lines.insert(3, 'x' * 5001)
  (tmp_path / 'long.txt').write_text('\n'.join(lines) + '\n')
  messages = []
  c = make_config(corpus, 'lm', train_files=str(tmp_path / 'long.txt'))
  data = pipeline.load_task_data('lm', c, tmp_path / 'wd', log=messages.append)
  take(data.train_batches(), 1)
  skipped = [m for m in messages if 'longer than 5000 characters' in m]
  assert len(skipped) == 1 and 'first at line 4' in skipped[0], messages


def test_vocab_larger_than_config_is_refused(corpus, vocab, tmp_path):
  with pytest.raises(ValueError, match='overflow'):
    pipeline.load_task_data('translate', make_config(corpus, 'translate', vocab_path=vocab, vocab_size=10),
                            tmp_path, log=lambda m: None)


def test_bad_parallel_input_surfaces_with_file_names(corpus, tmp_path):
  (tmp_path / 'bad.en').write_text('a\nb\nc\n')
  (tmp_path / 'bad.de').write_text('x\ny\n')
  c = make_config(corpus, 'translate', train_files=str(tmp_path / 'bad'))
  with pytest.raises(ValueError, match=r'bad\.en has 3 lines but .*bad\.de has 2 lines'):
    pipeline.load_task_data('translate', c, tmp_path / 'wd', log=lambda m: None)


def test_config_validation(corpus, tmp_path):
  c = make_config(corpus, 'translate')
  with pytest.raises(ValueError, match='task must be'):
    pipeline.load_task_data('summarize', c, tmp_path)
  c.source = 'web'
  with pytest.raises(ValueError, match='data.source'):
    pipeline.load_task_data('translate', c, tmp_path)
  del c['seed']
  with pytest.raises(ValueError, match="lacks fields \\['seed'\\]"):
    pipeline.load_task_data('translate', c, tmp_path)


@pytest.fixture
def fake_offline_corpus(monkeypatch, corpus):
  """Stands in for mqa_repro.corpus (the builder, tested in tests/corpus/) with its API."""
  calls = []

  def offline_corpus_paths(out_dir):
    out = Path(out_dir)
    return {'translate': {s: (out / f'{s}.en', out / f'{s}.de') for s in ('train', 'dev', 'test')},
            'lm': {s: out / f'{s}.txt' for s in ('train', 'dev', 'test')}}

  def build_offline_corpus(out_dir, *, seed=0, dev_size=2000, test_size=2000, sources=None, force=False,
                           log=print):
    out = Path(out_dir)
    if (out / 'MANIFEST.json').is_file() and not force:
      return {'out_dir': str(out)}   # up to date: the real builder returns without rebuilding
    calls.append(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s, src in (('train', 'train'), ('dev', 'dev'), ('test', 'dev')):
      for lang in ('en', 'de'):
        (out / f'{s}.{lang}').write_text((corpus / f'{src}.{lang}').read_text())
      (out / f'{s}.txt').write_text((corpus / f'{src}.en').read_text())
    (out / 'MANIFEST.json').write_text('{}')
    return {'out_dir': str(out)}

  module = types.ModuleType('mqa_repro.corpus')
  module.offline_corpus_paths, module.build_offline_corpus = offline_corpus_paths, build_offline_corpus
  monkeypatch.setitem(sys.modules, 'mqa_repro.corpus', module)
  return calls


def test_offline_source_builds_once(fake_offline_corpus, corpus, vocab, tmp_path):
  for task, keys in (('translate', TRANSLATE_KEYS), ('lm', LM_KEYS)):
    c = make_config(corpus, task, source='offline', data_dir=str(tmp_path / 'offline'), vocab_path=vocab)
    data = pipeline.load_task_data(task, c, tmp_path / task, log=lambda m: None)
    check_batch_layout(next(data.train_batches()), keys, 4, 32)
    assert data.eval_texts('dev')[0] == (corpus / 'dev.en').read_text().splitlines()
  assert fake_offline_corpus == [tmp_path / 'offline']  # built for the first task, reused by the second


def test_offline_default_dir(monkeypatch, tmp_path):
  monkeypatch.setenv('MQA_REPRO_CACHE', str(tmp_path))
  assert offline.default_dir() == tmp_path / 'offline_corpus'
  monkeypatch.delenv('MQA_REPRO_CACHE')
  assert offline.default_dir() == Path.home() / '.cache' / 'mqa_repro' / 'offline_corpus'


# ---- the CLI -------------------------------------------------------------------------------------


def test_cli_bench_and_offline_corpus(fake_offline_corpus, corpus, vocab, tmp_path, capsys):
  out = tmp_path / 'bench.json'
  assert cli.main(['bench', '--task', 'lm', '--source', 'text', '--train-files', str(corpus / 'mono.txt'),
                   '--vocab-path', vocab, '--vocab-size', '64', '--max-length', '32', '--batch-size', '4',
                   '--steps', '3', '--workdir', str(tmp_path / 'wd'), '--out', str(out)]) == 0
  result = json.loads(out.read_text())
  assert result['task'] == 'lm' and result['steps'] == 3 and result['tokens_per_s'] > 0
  assert 0 < result['fill'] <= 1 and result['provenance']['host']['cpus'] == os.cpu_count()
  assert 'device_kind' not in result['provenance']      # host-only work: JAX not started
  assert cli.main(['offline-corpus', '--out', str(tmp_path / 'oc')]) == 0
  assert fake_offline_corpus == [str(tmp_path / 'oc')]
  # Errors come out as one line saying what is wrong, with a non-zero exit status.
  assert cli.main(['bench', '--task', 'lm', '--source', 'text', '--train-files', str(tmp_path / 'nope.txt'),
                   '--workdir', str(tmp_path / 'wd2')]) == 1
  assert 'file not found' in capsys.readouterr().err


# ---- the real newstest / lm1b files --------------------------------------------------------------


def real_data_dir() -> Path:
  from mqa_repro.data.sources import resolve_data_dir
  d = resolve_data_dir(None) or Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
  if not (d / 'wmt14_en_de' / 'newstest2013.en').is_file():
    pytest.skip(f'real evaluation text not found in {d}: set MQA_REPRO_DATA to the directory holding '
                f'wmt14_en_de/newstest2013.en and lm1b/ (see data/SOURCES.md)')
  return d


def test_real_newstest_files(tmp_path):
  d = real_data_dir()
  c = pipeline.default_data_config('translate')
  c.source = 'text'
  c.train_files = str(d / 'wmt14_en_de' / 'newstest2013')
  c.dev_files = str(d / 'wmt14_en_de' / 'newstest2013')
  c.test_files = str(d / 'wmt14_en_de' / 'newstest2014')
  c.vocab_size, c.spm_max_sentences, c.batch_size, c.eval_batch_size = 500, 2000, 16, 64
  data = pipeline.load_task_data('translate', c, tmp_path, log=lambda m: None)
  src, ref = data.eval_texts('test')
  assert len(src) == len(ref) == 3003
  assert (src[0], ref[0]) == ('Gutach: Increased safety for pedestrians', 'Gutach: Noch mehr Sicherheit für Fußgänger')
  assert len(data.eval_texts('dev')[0]) == 3000
  check_batch_layout(next(data.train_batches()), TRANSLATE_KEYS, 16, 256)
  n = sum(len(segments(b, 'targets')) for b in data.eval_batches('test'))
  assert n == len(data._eval('test')[1]) > 2990       # nearly all of newstest2014 fits 256 tokens
  kept = data._eval('test')[1]
  assert data.word_count('test') == sum(len(ref[i].split()) + 1 for i in kept)
  assert data.tokenizer.decode(data._eval('test')[0].targets[0]) == ref[0]


def test_real_lm1b_heldout_file(tmp_path):
  d = real_data_dir()
  f = d / 'lm1b' / 'news.en.heldout-00000-of-00050.first100.txt'
  c = pipeline.default_data_config('lm')
  c.source, c.train_files, c.dev_files, c.test_files = 'text', str(f), str(f), str(f)
  c.vocab_size, c.batch_size, c.eval_batch_size = 300, 4, 4
  data = pipeline.load_task_data('lm', c, tmp_path, log=lambda m: None)
  sents, _ = data.eval_texts('dev')
  assert len(sents) == 100 and sents[0].startswith('Having a little flexibility on that issue')
  lines = f.read_text().splitlines()
  assert data.word_count('dev') == sum(len(l.split()) + 1 for l in lines)
  check_batch_layout(next(data.train_batches()), LM_KEYS, 4, 256)
