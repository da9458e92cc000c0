"""Raw text sources on local disk: line-aligned parallel files, TSV, and monolingual text.

Formats
  parallel  ``PREFIX.en`` + ``PREFIX.de``, line i of one aligned with line i of the other; or a TSV file
            (``*.tsv``) with ``English<TAB>German`` per line; or an explicit ``(en_path, de_path)`` pair.
  mono      one sentence per line.
Any file may be compressed (``.xz``, ``.gz``, ``.bz2``: the offline corpus ships its training text as
``.xz``); a prefix finds ``PREFIX.en`` or ``PREFIX.en.xz`` etc.

Error policy (never silent misalignment):
  * missing file, ``.en``/``.de`` with different line counts, bytes that are not UTF-8, a TSV line
    without exactly one TAB  ->  FileNotFoundError / ValueError naming the file (both files and both
    counts for a count mismatch) and the 1-based line;
  * an empty line, or a line longer than ``max_chars`` characters  ->  skipped and counted. In parallel
    text an empty or over-long side drops the whole PAIR, so the two sides stay aligned. The counts go
    to the logger (or ``log``) and into an optional :class:`ReadStats`.

Lines are split on ``\\n`` only (reading bytes): ``str.splitlines`` would also split on U+2028, U+0085
etc. inside a sentence and shift every following line of one side against the other.

No TensorFlow import.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import logging
import lzma
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence, Union

logger = logging.getLogger(__name__)

DATA_ENV = 'MQA_REPRO_DATA'
# Longer than any real sentence (newstest's longest is ~700 chars); catches concatenated documents and
# binary junk in web-crawled text, which would only be length-filtered later after costly tokenization.
MAX_LINE_CHARS = 5000
COMPRESSED_SUFFIXES = ('.xz', '.gz', '.bz2')

PathLike = Union[str, os.PathLike]
ParallelSpec = Union[PathLike, tuple[PathLike, PathLike]]
Log = Callable[[str], None]


@dataclasses.dataclass
class ReadStats:
  """Counts from one or more reads (sentences for mono text, pairs for parallel text)."""
  kept: int = 0
  empty: int = 0      # an empty (whitespace-only) line on at least one side
  too_long: int = 0   # a line longer than max_chars on at least one side

  @property
  def skipped(self) -> int:
    return self.empty + self.too_long


def resolve_data_dir(flag_value: str | None) -> Path | None:
  """Directory of the real evaluation text: the flag if given, else ``$MQA_REPRO_DATA``, else None.

  Existence is not checked here: callers decide whether a missing directory is an error or a skip.
  """
  value = flag_value or os.environ.get(DATA_ENV, '')
  return Path(value).expanduser() if value else None


def _open(path: Path) -> BinaryIO:
  if path.suffix == '.xz':
    return lzma.open(path, 'rb')
  if path.suffix == '.gz':
    return gzip.open(path, 'rb')
  if path.suffix == '.bz2':
    return bz2.open(path, 'rb')
  return open(path, 'rb')


def existing_file(path: PathLike) -> Path:
  """``path`` itself, or ``path`` + a compression suffix; FileNotFoundError naming what was tried."""
  path = Path(path).expanduser()
  candidates = [path] + [path.with_name(path.name + s) for s in COMPRESSED_SUFFIXES]
  for c in candidates:
    if c.is_file():
      return c
  raise FileNotFoundError(f"file not found: {path} (also tried {', '.join(c.name for c in candidates[1:])})")


def resolve_text_path(spec: str, data_dir: Path | None = None) -> str:
  """A relative path that does not exist from the working directory is looked up under ``data_dir``.

  Lets a config name ``wmt14_en_de/newstest2013`` portably, with the data directory coming from
  ``$MQA_REPRO_DATA``. Returned unchanged when neither location has it (the reader then reports it).
  """
  p = Path(spec).expanduser()
  if p.is_absolute() or data_dir is None or _any_exists(p):
    return str(p)
  q = data_dir / p
  return str(q) if _any_exists(q) else str(p)


def _any_exists(p: Path) -> bool:
  names = [p.name] + [f'{p.name}.{lang}' for lang in ('en', 'de')]
  return any(p.with_name(n + s).is_file() for n in names for s in ('',) + COMPRESSED_SUFFIXES)


def count_lines(path: PathLike) -> int:
  """Lines as :func:`read_lines` sees them (a last line without a newline counts)."""
  n, last = 0, b'\n'
  with _open(Path(path)) as f:
    while chunk := f.read(1 << 20):
      n += chunk.count(b'\n')
      last = chunk[-1:]
  return n + (last != b'\n')


def read_lines(path: PathLike) -> Iterator[tuple[int, str]]:
  """(1-based line number, text without the line ending) for every line; strict UTF-8."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"file not found: {path}")
  with _open(path) as f:
    yield from read_stream(f, str(path))


def read_stream(stream: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
  """``read_lines`` of an open binary stream (e.g. standard input), `name` naming it in errors."""
  for lineno, raw in enumerate(stream, start=1):
    try:
      text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
      raise ValueError(f"{name}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                       f"{e.start + 1}); re-encode the file as UTF-8") from None
    if lineno == 1:
      text = text.removeprefix('\ufeff')  # byte-order mark some editors write
    yield lineno, text.rstrip('\r\n')


def _report(what: str, stats: ReadStats, max_chars: int, first: dict[str, int], log: Log | None):
  if not stats.skipped:
    return
  parts = []
  if stats.empty:
    parts.append(f"{stats.empty} with an empty line (first at line {first['empty']})")
  if stats.too_long:
    parts.append(f"{stats.too_long} longer than {max_chars} characters (first at line {first['too_long']})")
  (log or logger.warning)(f"{what}: kept {stats.kept}, skipped {' and '.join(parts)}")


def _check(texts: Sequence[str], max_chars: int) -> str | None:
  """Why this line / pair is skipped ('empty', 'too_long'), or None to keep it."""
  if any(not t for t in texts):
    return 'empty'
  if any(len(t) > max_chars for t in texts):
    return 'too_long'
  return None


def _merge(into: ReadStats | None, local: ReadStats) -> None:
  if into is not None:
    into.kept += local.kept
    into.empty += local.empty
    into.too_long += local.too_long


def filter_rows(rows: Iterator[tuple[int, tuple[str, ...]]], what: str,
                max_chars: int = MAX_LINE_CHARS, stats: ReadStats | None = None,
                log: Log | None = None) -> Iterator[tuple[str, ...]]:
  """(line number, texts) -> texts: strip, skip (and count) empty / over-long rows, and report the
  counts once the input is exhausted. Every reader here goes through it; so does text that never was
  a file (the Python API's rows), so that it is read as its file would be."""
  local, first = ReadStats(), {}
  for lineno, texts in rows:
    texts = tuple(t.strip() for t in texts)
    why = _check(texts, max_chars)
    if why:
      setattr(local, why, getattr(local, why) + 1)
      first.setdefault(why, lineno)
      continue
    local.kept += 1
    yield texts
  _merge(stats, local)
  _report(what, local, max_chars, first, log)


def read_monolingual(path: PathLike, *, max_chars: int = MAX_LINE_CHARS, stats: ReadStats | None = None,
                     log: Log | None = None) -> Iterator[str]:
  """Sentences of a one-sentence-per-line file, stripped; empty and over-long lines skipped (counted).

  A missing file raises at the call; a bad line raises when iteration reaches it.
  """
  path = existing_file(path)
  rows = ((i, (t,)) for i, t in read_lines(path))
  return (t for (t,) in filter_rows(rows, str(path), max_chars, stats, log))


def parallel_paths(spec: ParallelSpec) -> tuple[Path, Path] | Path:
  """``(en_file, de_file)`` for a prefix or explicit pair, or the TSV file itself."""
  if isinstance(spec, (tuple, list)):
    if len(spec) != 2:
      raise ValueError(f"a parallel file pair must be (en_path, de_path), got {spec!r}")
    return existing_file(spec[0]), existing_file(spec[1])
  p = Path(spec).expanduser()
  if p.name.endswith(tuple('.tsv' + s for s in ('',) + COMPRESSED_SUFFIXES)):
    return existing_file(p)
  return existing_file(f'{p}.en'), existing_file(f'{p}.de')


def read_parallel(spec: ParallelSpec, *, max_chars: int = MAX_LINE_CHARS, stats: ReadStats | None = None,
                  log: Log | None = None) -> Iterator[tuple[str, str]]:
  """(english, german) pairs from ``PREFIX.en``/``PREFIX.de``, a pair of paths, or a ``.tsv`` file.

  Missing files and different line counts raise at the call, before any pair is produced, so a
  consumer that stops early (``max_train_examples``) still never sees misaligned text.
  """
  paths = parallel_paths(spec)
  if isinstance(paths, Path):
    return filter_rows(_tsv_rows(paths), str(paths), max_chars, stats, log)
  en, de = paths
  n_en, n_de = count_lines(en), count_lines(de)
  if n_en != n_de:
    raise ValueError(f"parallel files are not line-aligned: {en} has {n_en} lines but {de} has "
                     f"{n_de} lines")
  rows = ((i, (a, b)) for (i, a), (_, b) in zip(read_lines(en), read_lines(de)))
  return filter_rows(rows, f'{en} + {de.name}', max_chars, stats, log)


def _tsv_rows(path: Path) -> Iterator[tuple[int, tuple[str, str]]]:
  for lineno, text in read_lines(path):
    if not text.strip():
      yield lineno, ('', '')   # an empty line is a counted skip, not a format error
      continue
    tabs = text.count('\t')
    if tabs != 1:
      raise ValueError(f"{path}:{lineno}: expected exactly one TAB (English<TAB>German), found {tabs}")
    a, b = text.split('\t')
    yield lineno, (a, b)


def split_specs(value: str | Sequence[str]) -> list[str]:
  """Comma-separated config value -> list of non-empty specs."""
  if isinstance(value, str):
    value = value.split(',')
  return [v.strip() for v in value if v and v.strip()]


class FileSource:
  """Local files per split: a data source (mqa_repro.data.datasets) over ``specs`` {split: [spec]},
  each spec a parallel file (two task sides) or a text file (one side)."""

  def __init__(self, task, specs: dict[str, list], log: Log, origin: str):
    self.task, self.specs, self.log, self.origin = task, specs, log, origin
    self._reported: set[str] = set()

  def _report(self, message: str) -> None:
    """The reader's skip counts, each once: a training file is read twice (vocabulary, then
    tokens), and both reads end with the same message."""
    if message not in self._reported:
      self._reported.add(message)
      self.log(message)

  def _specs(self, split: str) -> list:
    if not self.specs.get(split):
      raise ValueError(f"no files for split {split!r} ({self.origin}); known splits: "
                       f"{sorted(k for k, v in self.specs.items() if v)}")
    return self.specs[split]

  @property
  def _parallel(self) -> bool:
    return len(self.task.sides) == 2

  def rows(self, split: str) -> Iterator[tuple[str, ...]]:
    for spec in self._specs(split):
      if self._parallel:
        yield from read_parallel(spec, log=self._report)
      else:
        yield from ((s,) for s in read_monolingual(spec, log=self._report))

  def files(self, split: str) -> list[Path]:
    out = []
    for spec in self._specs(split):
      if self._parallel:
        p = parallel_paths(spec)
        out += [p] if isinstance(p, Path) else list(p)
      else:
        out.append(existing_file(spec))
    return out

  def fingerprint(self, split: str) -> str:
    return 'files:' + fingerprint_files(self.files(split))

  def describe(self, split: str) -> str:
    return ', '.join(str(p) for p in self.files(split))


def fingerprint_files(paths: Sequence[PathLike]) -> str:
  """sha256 over the files' names and contents: keys the token cache, so edited data is re-tokenized."""
  h = hashlib.sha256()
  for p in paths:
    p = Path(p)
    h.update(p.name.encode() + b'\0')
    with open(p, 'rb') as f:
      while chunk := f.read(1 << 22):
        h.update(chunk)
  return h.hexdigest()
