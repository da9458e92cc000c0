"""SentencePiece subword vocabulary: training, loading, and the ONE definition of the special ids.

Every other module (model, decoding, evaluation) takes the special ids from here. The ids are baked
into the SentencePiece model at training time, and :meth:`Tokenizer.load` refuses a model whose ids
differ (e.g. a T5 vocabulary, where id 2 is ``<unk>``), because a silent mismatch would make the model
stop at the wrong token.

No TensorFlow import: tokenization runs in plain Python / numpy.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import sentencepiece as spm

PAD_ID = 0   # padding; also "no segment" in packed batches
EOS_ID = 1   # end of sentence: every example ends with it
BOS_ID = 2   # start of decoding; the model inserts it when it shifts targets right
UNK_ID = 3

_SPECIAL_IDS = {'pad_id': PAD_ID, 'eos_id': EOS_ID, 'bos_id': BOS_ID, 'unk_id': UNK_ID}

# English and German use a small alphabet; 0.9999 keeps umlauts, ß, typographic quotes and dashes as
# real pieces while rare symbols (CJK, emoji in web text) become <unk> instead of eating the vocabulary.
CHARACTER_COVERAGE = 0.9999


class Tokenizer:
  """A loaded SentencePiece model with this project's special ids.

  ``encode`` never adds EOS or BOS (the pipeline appends EOS; the model adds BOS when shifting).
  ``decode`` reads ids the way a decoder emits them: it stops at the first EOS and drops PAD and BOS.
  """

  def __init__(self, model_proto: bytes, model_path: str | os.PathLike = ''):
    self._proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.model_path = str(model_path)
    got = {'pad_id': self._sp.pad_id(), 'eos_id': self._sp.eos_id(), 'bos_id': self._sp.bos_id(),
           'unk_id': self._sp.unk_id()}
    if got != _SPECIAL_IDS:
      raise ValueError(f"SentencePiece model {self.model_path or '<bytes>'} has special ids {got}; this "
                       f"project needs {_SPECIAL_IDS}. Train one with mqa_repro.data.tokenizer."
                       f"train_sentencepiece (or leave data.vocab_path empty to train one).")

  @classmethod
  def load(cls, path: str | os.PathLike) -> 'Tokenizer':
    """The model at a local path or a gs:// URL (mqa_repro/paths.py)."""
    from mqa_repro import paths
    path = paths.run_path(path, 'the vocabulary path')
    if not path.is_file():
      raise FileNotFoundError(f"SentencePiece model not found: {path}")
    return cls(path.read_bytes(), path)

  @property
  def vocab_size(self) -> int:
    """Number of pieces (ids are 0 .. vocab_size-1); the model may pad its embedding beyond this."""
    return self._sp.get_piece_size()

  @property
  def model_proto(self) -> bytes:
    return self._proto

  @property
  def fingerprint(self) -> str:
    """sha256 of the serialized model: keys the token caches, so a new vocab never reuses old ids."""
    return hashlib.sha256(self._proto).hexdigest()

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text, out_type=int)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    # SentencePiece's batch call runs its loop in C++ on all cores.
    return self._sp.encode(list(texts), out_type=int, num_threads=os.cpu_count() or 1)

  def decode(self, ids: Iterable[int]) -> str:
    return self._sp.decode(_strip_special(ids))

  def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
    return self._sp.decode([_strip_special(ids) for ids in batch])

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))


def _strip_special(ids: Iterable[int]) -> list[int]:
  """Ids up to (not including) the first EOS, without PAD / BOS. Accepts lists and numpy rows."""
  if isinstance(ids, np.ndarray):
    ids = ids.tolist()
  out = []
  for i in ids:
    i = int(i)
    if i == EOS_ID:
      break
    if i not in (PAD_ID, BOS_ID):
      out.append(i)
  return out


def sample_sentences(sentences: Iterable[str], max_sentences: int, seed: int) -> list[str]:
  """A uniform sample of at most ``max_sentences`` non-empty sentences (reservoir sampling).

  Taking the first N would bias the vocabulary towards whatever corpus comes first in a concatenation
  (e.g. Europarl before CommonCrawl); the reservoir sees the whole stream in one pass and O(N) memory.
  """
  rng = random.Random(seed)
  reservoir: list[str] = []
  for n, s in enumerate(s for s in sentences if s):
    if n < max_sentences:
      reservoir.append(s)
    else:
      j = rng.randrange(n + 1)
      if j < max_sentences:
        reservoir[j] = s
  return reservoir


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, model_path: str | os.PathLike, *,
                        max_sentences: int = 1_000_000, model_type: str = 'unigram',
                        seed: int = 0) -> Tokenizer:
  """Train a SentencePiece model on ``sentences`` (in memory) and write it to ``model_path``.

  For translation pass both languages' sentences: the paper shares one vocabulary (and embedding)
  between encoder, decoder and softmax. ``hard_vocab_limit=False`` lets tiny corpora (tests) end with
  fewer pieces than asked instead of failing. The file is written atomically (temp file + rename), so
  concurrent readers never see a partial model.
  """
  if vocab_size <= len(_SPECIAL_IDS):
    raise ValueError(f"vocab_size must exceed the {len(_SPECIAL_IDS)} special ids, got {vocab_size}")
  sample = sample_sentences(sentences, max_sentences, seed)
  if not sample:
    raise ValueError("no sentences to train the SentencePiece vocabulary on")
  # SentencePiece's own sampling and unigram pruning draw random numbers: fix them too.
  spm.set_random_generator_seed(seed)
  proto = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sample), model_writer=proto, vocab_size=vocab_size,
      model_type=model_type, character_coverage=CHARACTER_COVERAGE, hard_vocab_limit=False,
      input_sentence_size=0, shuffle_input_sentence=False,  # already sampled above
      max_sentence_length=1 << 16, num_threads=os.cpu_count() or 1, minloglevel=2,
      **_SPECIAL_IDS)
  model_path = Path(model_path)
  model_path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=model_path.parent, prefix=model_path.name + '.tmp')
  with os.fdopen(fd, 'wb') as f:
    f.write(proto.getvalue())
  os.replace(tmp, model_path)
  return Tokenizer(proto.getvalue(), model_path)
