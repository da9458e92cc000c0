"""Text in, text out: decode a list of lines (sources, or LM prompts) with a trained model.

Translation runs translate each line; LM runs continue each line (the output is the continuation
only). Lines are sorted by length, decoded in batches, and returned in INPUT ORDER:
  * an empty (or all-whitespace) line gives an empty output without running the model;
  * a source longer than the model's position table is TRUNCATED to ``max_length`` tokens (EOS
    included); truncated inputs, and translations whose length limit the table lowers, are counted
    and reported once per call;
  * every batch of one call has the same shape: ``batch_size`` rows (the last padded with dummy rows)
    of the longest input's length rounded up to a multiple of 64, and one loop length. So a whole
    input compiles ONE program for the search: at these model sizes compiling, not decoding, is what
    a shape per batch would cost. Sorting by length still pays: a batch's loop stops when its longest
    hypothesis ends.
The hypotheses do not depend on the batch size in the default float32 decode (config.decode.dtype;
decoding/batch.py, "Determinism").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mqa_repro.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from mqa_repro.report.records import DecodeStats

Log = Callable[[str], None]
# progress(sentences done, sentences in all, seconds so far), called after every batch
Progress = Callable[[int, int, float], None]
WIDTH_MULTIPLE = 64   # source widths are padded to this: one compiled shape per call
STDIO = '-'


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _pad_rows(seqs: Sequence[Sequence[int]], rows: int, length: int, filler: Sequence[int]) -> np.ndarray:
  """Sequences -> [rows, length] PAD-padded, missing rows filled with `filler`."""
  out = np.full((rows, length), PAD_ID, np.int32)
  for r in range(rows):
    s = seqs[r] if r < len(seqs) else filler
    out[r, :len(s)] = s
  return out


class _Translate:
  """A source sentence -> its translation (tasks.Task.decoding 'translate')."""
  filler = [EOS_ID]           # a batch's dummy rows: an empty source

  @staticmethod
  def fit(ids: list[int], max_length: int) -> tuple[list[int], bool]:
    """Sources end with EOS, as in training; an over-long one keeps its first tokens and its EOS."""
    ids = ids + [EOS_ID]
    return (ids[:max_length - 1] + [EOS_ID], True) if len(ids) > max_length else (ids, False)

  @staticmethod
  def capped(lengths: list[int], max_length: int, a: float, b: int) -> int:
    from mqa_repro.decoding import batch
    return batch.capped_lengths(lengths, max_length, a, b) if lengths else 0

  @staticmethod
  def loop(width: int, max_length: int, a: float, b: int, max_new_tokens: int) -> int:
    from mqa_repro.decoding import batch
    return min(max_length, batch.round_up(int(a * width + b), 8))

  @staticmethod
  def run(model, params, tokens, *, a: float, b: int, max_new_tokens: int, **kwargs) -> Any:
    from mqa_repro.decoding import batch
    return batch.translate_batch(model, params, tokens, max_len_a=a, max_len_b=b, **kwargs)

  @staticmethod
  def output_start(ids: list[int]) -> int:
    return 0


class _Continue:
  """A prompt -> its continuation (tasks.Task.decoding 'continue'); the output is the new tokens."""
  filler: list[int] = []

  @staticmethod
  def fit(ids: list[int], max_length: int) -> tuple[list[int], bool]:
    """Room for at least one new token; an over-long prompt keeps its last tokens."""
    limit = max_length - 1
    return (ids[-limit:], True) if len(ids) > limit else (ids, False)

  @staticmethod
  def capped(lengths: list[int], max_length: int, a: float, b: int) -> int:
    return 0

  @staticmethod
  def loop(width: int, max_length: int, a: float, b: int, max_new_tokens: int) -> int:
    from mqa_repro.decoding import batch
    return min(max_length, batch.round_up(width + max_new_tokens, 8))

  @staticmethod
  def run(model, params, tokens, *, a: float, b: int, max_new_tokens: int, **kwargs) -> Any:
    from mqa_repro.decoding import batch
    return batch.continue_batch(model, params, tokens, max_new_tokens=max_new_tokens, **kwargs)

  @staticmethod
  def output_start(ids: list[int]) -> int:
    return len(ids)


DECODINGS = {'translate': _Translate, 'continue': _Continue}


def _decode(config, params: Any, tokenizer: Tokenizer, lines: Sequence[str], *, beam_size: int,
            alpha: float, batch_size: int, max_len_a: float | None, max_len_b: int | None,
            max_new_tokens: int, nbest: int, log: Log, progress: Progress | None, mesh
            ) -> tuple[list[list[tuple[str, float | None]]], DecodeStats]:
  """Every line's hypotheses as [(text, beam score)] ([(text, None)] without `nbest`), and stats."""
  from mqa_repro import tasks
  from mqa_repro.decoding import batch as decode
  from mqa_repro.nn.transformer import make_model

  how = DECODINGS[tasks.get(config.task).decoding]
  model = make_model(config, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  max_length = model.spec.max_length
  a = config.decode.max_len_a if max_len_a is None else max_len_a
  b = config.decode.max_len_b if max_len_b is None else max_len_b
  params = decode.unbox(params)
  rules = ()
  if mesh is not None and mesh.size > 1:
    from mqa_repro.training import sharding
    rules = sharding.resolve_rules(config, mesh, log=lambda m: None)

  keep = [i for i, line in enumerate(lines) if line.strip()]
  fitted = [how.fit(list(ids), max_length)
            for ids in (tokenizer.encode_batch([lines[i] for i in keep]) if keep else [])]
  seqs = [ids for ids, _ in fitted]
  truncated = sum(cut for _, cut in fitted)
  if truncated:
    log(f'decode: WARNING: {truncated} of {len(lines)} inputs longer than the model\'s max_length '
        f'{max_length} were truncated')
  capped = how.capped([len(ids) for ids in seqs], max_length, a, b)
  if capped:
    log(f'decode: WARNING: {capped} of {len(seqs)} sources may decode at most max_length='
        f'{max_length} tokens instead of {a}·len+{b}')

  # Longest first: the first batch is the slowest and the largest, so a bad size fails at once.
  order = sorted(range(len(seqs)), key=lambda j: -len(seqs[j]))
  outputs: list[list[tuple[str, float | None]]] = [[('', None)] * max(nbest, 1) for _ in lines]
  start, new_tokens = time.perf_counter(), 0
  rows = max(1, min(batch_size, len(order)))
  longest = max((len(ids) for ids in seqs), default=1)
  width = min(max_length, decode.round_up(longest, WIDTH_MULTIPLE))
  loop = how.loop(width, max_length, a, b, max_new_tokens)
  for first in range(0, len(order), rows):
    chunk = order[first:first + rows]
    out = how.run(model, params, _pad_rows([seqs[j] for j in chunk], rows, width, how.filler),
                  a=a, b=b, max_new_tokens=max_new_tokens, beam_size=beam_size, alpha=alpha,
                  vocab_size=tokenizer.vocab_size, max_len=loop, nbest=nbest, mesh=mesh,
                  rules=rules)
    tokens, scores = out if nbest else (out[:, None], None)           # [R, n, T], [R, n]
    for r, j in enumerate(chunk):
      hyps = [tokens[r, k, how.output_start(seqs[j]):] for k in range(tokens.shape[1])]
      new_tokens += int(np.sum(hyps[0] != PAD_ID))
      outputs[keep[j]] = [(tokenizer.decode(h), None if scores is None else float(scores[r, k]))
                          for k, h in enumerate(hyps)]
    if progress is not None:
      progress(min(first + rows, len(order)), len(order), time.perf_counter() - start)
  seconds = time.perf_counter() - start
  stats: DecodeStats = {
      'lines': len(lines), 'empty': len(lines) - len(keep), 'truncated': truncated, 'capped': capped,
      'batches': -(-len(order) // rows), 'shape': [rows, width, loop], 'beam_size': beam_size,
      'alpha': alpha, 'seconds': seconds, 'output_tokens': new_tokens,
      'tokens_per_second': new_tokens / seconds if seconds > 0 else 0.0}
  return outputs, stats


def decode_lines(config, params: Any, tokenizer: Tokenizer, lines: Sequence[str], *, beam_size: int = 4,
                 alpha: float = 0.6, batch_size: int = 64, max_len_a: float | None = None,
                 max_len_b: int | None = None, max_new_tokens: int = 64, log: Log = _stderr,
                 progress: Progress | None = None, mesh=None) -> tuple[list[str], DecodeStats]:
  """Decode `lines` (sources, or LM prompts) -> (the best hypothesis of each, in input order; stats).

  ``max_len_a`` / ``max_len_b`` default to config.decode's; ``max_new_tokens`` is the LM's budget.
  With a `mesh` (and `params` placed on it, e.g. ``checkpoint.load_for_inference(mesh=...)``) the
  batches run sharded over it, as training does.
  """
  outputs, stats = _decode(config, params, tokenizer, lines, beam_size=beam_size, alpha=alpha,
                           batch_size=batch_size, max_len_a=max_len_a, max_len_b=max_len_b,
                           max_new_tokens=max_new_tokens, nbest=0, log=log, progress=progress,
                           mesh=mesh)
  return [hyps[0][0] for hyps in outputs], stats


def decode_nbest(config, params: Any, tokenizer: Tokenizer, lines: Sequence[str], nbest: int, *,
                 beam_size: int = 4, alpha: float = 0.6, batch_size: int = 64,
                 max_len_a: float | None = None, max_len_b: int | None = None,
                 max_new_tokens: int = 64, log: Log = _stderr, progress: Progress | None = None,
                 mesh=None) -> tuple[list[list[tuple[str, float]]], DecodeStats]:
  """The `nbest` (<= beam_size) best hypotheses of every line, best first, as (text, beam score):
  the sum of the hypothesis' token log-probabilities over the length penalty (an LM's includes its
  prompt's). A beam slot that never finished a hypothesis has score -inf and empty text; an empty
  line's hypotheses are empty with score NaN (nothing was decoded). Other arguments as decode_lines."""
  if not 1 <= nbest <= beam_size:
    raise ValueError(f'nbest must be between 1 and the beam size {beam_size}, got {nbest}')
  outputs, stats = _decode(config, params, tokenizer, lines, beam_size=beam_size, alpha=alpha,
                           batch_size=batch_size, max_len_a=max_len_a, max_len_b=max_len_b,
                           max_new_tokens=max_new_tokens, nbest=nbest, log=log, progress=progress,
                           mesh=mesh)
  return [[(text, float('nan') if score is None else score) for text, score in hyps]
          for hyps in outputs], stats


# --------------------------------------------------------------------------------------------------
# Files.


def read_input(path: str | Path) -> list[str]:
  """The lines of a UTF-8 text file, or of standard input for '-', read as training text is
  (data/sources.py: split on \\n only, a byte-order mark dropped): bytes that are not UTF-8 raise
  ValueError naming the file (or <stdin>) and the line."""
  from mqa_repro.data import sources
  if str(path) == STDIO:
    return [text for _, text in sources.read_stream(sys.stdin.buffer, '<stdin>')]
  return [text for _, text in sources.read_lines(path)]


def _write(path: str | Path, text: str) -> None:
  if str(path) == STDIO:
    sys.stdout.write(text)
    sys.stdout.flush()
    return
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding='utf-8')


def _one_line(text: str) -> str:
  # Hypotheses never contain newlines from the tokenizer, but guard the one-line-per-input contract.
  return text.replace('\n', ' ')


def write_output(path: str | Path, outputs: Sequence[str]) -> None:
  """One line per output ('-': standard output)."""
  _write(path, ''.join(_one_line(o) + '\n' for o in outputs))


def write_nbest(path: str | Path, nbest: Sequence[Sequence[tuple[str, float]]]) -> None:
  """TSV ``index<TAB>score<TAB>hypothesis``, n lines per input (index 0-based, best first)."""
  _write(path, ''.join(f'{i}\t{score:.6g}\t{_one_line(text)}\n'
                       for i, hyps in enumerate(nbest) for text, score in hyps))


def decode_file(config, params: Any, tokenizer: Tokenizer, in_path: str | Path, out_path: str | Path,
                **kwargs: Any) -> DecodeStats:
  """Decode every line of `in_path` into `out_path` (same number of lines, same order); -> stats."""
  outputs, stats = decode_lines(config, params, tokenizer, read_input(in_path), **kwargs)
  write_output(out_path, outputs)
  return stats
