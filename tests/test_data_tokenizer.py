"""SentencePiece vocabulary: the special ids, round trips, and decode's EOS / PAD / BOS handling."""

import io

import numpy as np
import pytest
import sentencepiece as spm

from mqa_repro.data import tokenizer as tok_lib
from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_sentencepiece

SENTENCES = [
    'The quick brown fox jumps over the lazy dog.',
    'Der schnelle braune Fuchs springt über den faulen Hund.',
    'Straße, Größe, Übung: äöü ÄÖÜ ß.',
    'A Republican strategy to counter the re-election of Obama',
    'Gutach: Noch mehr Sicherheit für Fußgänger',
] * 20


@pytest.fixture(scope='module')
def tok(tmp_path_factory) -> Tokenizer:
  return train_sentencepiece(SENTENCES, 120, tmp_path_factory.mktemp('spm') / 'vocab.model')


def test_special_ids(tok):
  assert (PAD_ID, EOS_ID, BOS_ID, UNK_ID) == (0, 1, 2, 3)
  assert [tok.id_to_piece(i) for i in range(4)] == ['<pad>', '</s>', '<s>', '<unk>']


def test_round_trip_and_no_eos_added(tok):
  for s in SENTENCES[:5]:
    ids = tok.encode(s)
    assert EOS_ID not in ids and BOS_ID not in ids and PAD_ID not in ids
    assert tok.decode(ids) == s
  assert tok.encode_batch(SENTENCES[:5]) == [tok.encode(s) for s in SENTENCES[:5]]


def test_decode_stops_at_eos_and_drops_pad_bos(tok):
  a, b = tok.encode(SENTENCES[0]), tok.encode(SENTENCES[1])
  assert tok.decode([BOS_ID] + a + [EOS_ID] + b + [PAD_ID]) == SENTENCES[0]
  rows = np.zeros((2, 40), np.int32)
  rows[0, :len(a) + 1] = a + [EOS_ID]
  rows[1, 1:len(b) + 1] = b          # leading PAD, no EOS at all
  assert tok.decode_batch(rows) == [SENTENCES[0], SENTENCES[1]]
  assert tok.decode(np.asarray(a + [EOS_ID])) == SENTENCES[0]


def test_unknown_characters_map_to_unk(tok):
  assert UNK_ID in tok.encode('漢字')


def test_load_saved_model(tok):
  again = Tokenizer.load(tok.model_path)
  assert again.vocab_size == tok.vocab_size and again.fingerprint == tok.fingerprint
  assert again.encode(SENTENCES[2]) == tok.encode(SENTENCES[2])


def test_tiny_corpus_large_vocab_does_not_fail(tmp_path):
  t = train_sentencepiece(['a b c', 'b c d'], 5000, tmp_path / 'v.model')
  assert 4 < t.vocab_size < 5000


def test_same_seed_same_vocabulary(tmp_path):
  a = train_sentencepiece(SENTENCES, 100, tmp_path / 'a.model', seed=1)
  b = train_sentencepiece(SENTENCES, 100, tmp_path / 'b.model', seed=1)
  assert a.model_proto == b.model_proto


def test_sampling_caps_sentences():
  sample = tok_lib.sample_sentences((str(i) for i in range(1000)), 10, seed=0)
  assert len(sample) == 10 and len(set(sample)) == 10
  assert sample != [str(i) for i in range(10)]  # uniform over the stream, not its head
  assert sample == tok_lib.sample_sentences((str(i) for i in range(1000)), 10, seed=0)


def test_model_with_other_special_ids_is_refused(tmp_path):
  proto = io.BytesIO()  # SentencePiece defaults: unk 0, bos 1, eos 2, no pad
  spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES), model_writer=proto, vocab_size=80,
                                 hard_vocab_limit=False, minloglevel=2)
  (tmp_path / 'other.model').write_bytes(proto.getvalue())
  with pytest.raises(ValueError, match='special ids'):
    Tokenizer.load(tmp_path / 'other.model')
  with pytest.raises(FileNotFoundError):
    Tokenizer.load(tmp_path / 'absent.model')


def test_no_tensorflow_import():
  import subprocess, sys
  code = ('import sys; import mqa_repro.data.tokenizer, mqa_repro.data.sources, mqa_repro.data.pipeline, '
          'mqa_repro.data.tfds_source, mqa_repro.cli.data; '
          'sys.exit(int(any(m.startswith(("tensorflow", "tensorflow_datasets")) for m in sys.modules)))')
  assert subprocess.run([sys.executable, '-c', code]).returncode == 0
