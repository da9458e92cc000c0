"""``mqa-repro decode``: a text file in, detokenised hypotheses out, one line per input line.

    mqa-repro decode --workdir RUN --input newstest2014.en --output hyp.de [--beam 4] [--alpha 0.6]
                     [--batch-size 64] [--step S] [--decode-dtype float32|model]

Translation runs (config.task 'translate') translate each line; LM runs continue each line (the output
is the continuation only). Lines are sorted by length, decoded in batches, and written back in INPUT
ORDER:
  * an empty (or all-whitespace) line gives an empty output line without running the model;
  * a source longer than the model's position table is TRUNCATED to ``max_length`` tokens (EOS
    included), counted and reported;
  * every batch of one call has the same shape: ``batch_size`` rows (the last padded with dummy rows)
    of the longest input's length rounded up to a multiple of 64, and one loop length. So a whole file
    compiles ONE program for the search (compiling, not decoding, is what costs at these sizes: a
    shape per batch made a 3000-sentence test set compile for a minute and decode for half a second).
    Sorting by length still pays: a batch's loop stops when its longest hypothesis ends.
The hypotheses do not depend on --batch-size in the default float32 decode (config.decode.dtype;
decode.py, "Determinism"). The input must be UTF-8: anything else is refused naming the file and
line, before the checkpoint loads.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mqa_repro.data.tokenizer import EOS_ID, PAD_ID, Tokenizer

Log = Callable[[str], None]
WIDTH_MULTIPLE = 64   # source widths are padded to this: one compiled shape per call


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def _pad_rows(seqs: Sequence[Sequence[int]], rows: int, length: int, filler: Sequence[int]) -> np.ndarray:
  """Sequences -> [rows, length] PAD-padded, missing rows filled with `filler`."""
  out = np.full((rows, length), PAD_ID, np.int32)
  for r in range(rows):
    s = seqs[r] if r < len(seqs) else filler
    out[r, :len(s)] = s
  return out


def decode_lines(config, params: Any, tokenizer: Tokenizer, lines: Sequence[str], *, beam_size: int = 4,
                 alpha: float = 0.6, batch_size: int = 64, max_len_a: float | None = None,
                 max_len_b: int | None = None, max_new_tokens: int = 64,
                 log: Log = _stderr) -> tuple[list[str], dict[str, Any]]:
  """Decode `lines` (sources, or LM prompts) -> (outputs in input order, stats)."""
  from mqa_repro import decode
  from mqa_repro import model as mdl

  task = config.task
  model = mdl.make_model(config, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  max_length = model.spec.max_length
  a = config.decode.max_len_a if max_len_a is None else max_len_a
  b = config.decode.max_len_b if max_len_b is None else max_len_b
  params = decode._unbox(params)

  keep = [i for i, line in enumerate(lines) if line.strip()]
  encoded = tokenizer.encode_batch([lines[i] for i in keep]) if keep else []
  truncated = 0
  seqs: list[list[int]] = []
  for ids in encoded:
    if task == 'translate':
      ids = list(ids) + [EOS_ID]                     # sources end with EOS, as in training
      limit = max_length
    else:
      limit = max_length - 1                         # leave room for at least one new token
    if len(ids) > limit:
      truncated += 1
      ids = ids[:limit - 1] + [EOS_ID] if task == 'translate' else ids[-limit:]
    seqs.append(ids)
  if truncated:
    log(f'decode: WARNING: {truncated} of {len(lines)} inputs longer than the model\'s max_length '
        f'{max_length} were truncated')

  # Longest first: the first batch is the slowest and the largest, so a bad size fails at once.
  order = sorted(range(len(seqs)), key=lambda j: -len(seqs[j]))
  outputs = [''] * len(lines)
  start, new_tokens = time.perf_counter(), 0
  filler = [EOS_ID] if task == 'translate' else []
  rows = max(1, min(batch_size, len(order)))
  longest = max((len(s) for s in seqs), default=1)
  width = min(max_length, decode._round_up(longest, WIDTH_MULTIPLE))
  if task == 'translate':
    loop = min(max_length, decode._round_up(int(a * width + b), 8))
  else:
    loop = min(max_length, decode._round_up(width + max_new_tokens, 8))
  for first in range(0, len(order), rows):
    chunk = order[first:first + rows]
    batch = _pad_rows([seqs[j] for j in chunk], rows, width, filler)
    if task == 'translate':
      tokens = decode.translate_batch(model, params, batch, beam_size=beam_size, alpha=alpha,
                                      max_len_a=a, max_len_b=b, vocab_size=tokenizer.vocab_size,
                                      max_len=loop)
      hyps = [tokens[r] for r in range(len(chunk))]
    else:
      tokens = decode.continue_batch(model, params, batch, max_new_tokens=max_new_tokens,
                                     beam_size=beam_size, alpha=alpha,
                                     vocab_size=tokenizer.vocab_size, max_len=loop)
      hyps = [tokens[r, len(seqs[j]):] for r, j in enumerate(chunk)]
    new_tokens += sum(int(np.sum(h != PAD_ID)) for h in hyps)
    for j, h in zip(chunk, hyps):
      outputs[keep[j]] = tokenizer.decode(h)
  seconds = time.perf_counter() - start
  stats = {'lines': len(lines), 'empty': len(lines) - len(keep), 'truncated': truncated,
           'batches': -(-len(order) // rows), 'shape': [rows, width, loop], 'beam_size': beam_size,
           'alpha': alpha,
           'seconds': seconds, 'output_tokens': new_tokens,
           'tokens_per_second': new_tokens / seconds if seconds > 0 else 0.0}
  return outputs, stats


def read_input(path: str | Path) -> list[str]:
  """The lines of a UTF-8 text file, read as training text is (data/sources.py: split on \\n only, a
  byte-order mark dropped): bytes that are not UTF-8 raise ValueError naming the file and line."""
  from mqa_repro.data import sources
  return [text for _, text in sources.read_lines(path)]


def write_output(path: str | Path, outputs: Sequence[str]) -> None:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # Hypotheses never contain newlines from the tokenizer, but guard the one-line-per-input contract.
  path.write_text(''.join(o.replace('\n', ' ') + '\n' for o in outputs), encoding='utf-8')


def decode_file(config, params: Any, tokenizer: Tokenizer, in_path: str | Path, out_path: str | Path,
                **kwargs: Any) -> dict[str, Any]:
  """Decode every line of `in_path` into `out_path` (same number of lines, same order); -> stats."""
  outputs, stats = decode_lines(config, params, tokenizer, read_input(in_path), **kwargs)
  write_output(out_path, outputs)
  return stats


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='mqa-repro decode', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True, help='training run directory (config.json, checkpoints)')
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument('--input', help='text file, one source sentence (or prompt) per line')
  src.add_argument('--split', choices=('dev', 'test'),
                   help="the run's own data source instead of a file (config.data: offline corpus, "
                        "text files or a tfds split such as wmt14_translate/de-en test); the sources "
                        "go to OUTPUT.src and the references to OUTPUT.ref, for mqa-repro evaluate")
  p.add_argument('--output', required=True, help='where to write one hypothesis per input line')
  p.add_argument('--beam', type=int, default=None, help='beam size (1 = greedy; default config.decode)')
  p.add_argument('--alpha', type=float, default=None, help='length penalty exponent (default config)')
  p.add_argument('--batch-size', type=int, default=None, help='sentences per batch (default config)')
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: the latest)')
  p.add_argument('--max-new-tokens', type=int, default=64, help='LM only: tokens to add per prompt')
  p.add_argument('--decode-dtype', choices=('float32', 'model'), default=None,
                 help="float32: hypotheses that do not depend on --batch-size; model: the model's "
                      "dtype (bfloat16: faster, batch-dependent); default config.decode.dtype")
  args = p.parse_args(argv)
  for flag, value, low in (('--beam', args.beam, 1), ('--batch-size', args.batch_size, 1),
                           ('--alpha', args.alpha, 0), ('--step', args.step, 0),
                           ('--max-new-tokens', args.max_new_tokens, 1)):
    if value is not None and value < low:
      p.error(f'{flag} must be >= {low}, got {value}')

  from mqa_repro import checkpoint
  try:
    # The input first: a bad file is reported before minutes go into loading the checkpoint.
    lines = read_input(args.input) if args.input else None
    config, params, tokenizer = checkpoint.load_for_inference(args.workdir, step=args.step,
                                                              log=_stderr)
  except (FileNotFoundError, ValueError) as e:
    _stderr(f'mqa-repro decode: {e}')
    return 2
  if args.decode_dtype is not None:    # make_model hands it to translate_batch / continue_batch
    config = config.copy_and_resolve_references()
    config.decode.dtype = '' if args.decode_dtype == 'model' else args.decode_dtype
  beam = args.beam if args.beam is not None else config.decode.beam_size
  batch = args.batch_size if args.batch_size is not None else config.decode.batch_size
  if beam < 1 or batch < 1:
    _stderr('mqa-repro decode: --beam and --batch-size must be >= 1')
    return 2
  if args.split:
    from mqa_repro.data.pipeline import load_task_data
    data = load_task_data(config.task, config.data, args.workdir, log=_stderr)
    lines, references = data.eval_texts(args.split)
    write_output(args.output + '.src', lines)
    write_output(args.output + '.ref', references)
  outputs, stats = decode_lines(config, params, tokenizer, lines, beam_size=beam,
                                alpha=args.alpha if args.alpha is not None else config.decode.alpha,
                                batch_size=batch, max_new_tokens=args.max_new_tokens)
  write_output(args.output, outputs)
  _stderr(f"decode: {stats['lines']} lines ({stats['empty']} empty, {stats['truncated']} truncated) "
          f"-> {args.output} in {stats['seconds']:.1f}s, {stats['tokens_per_second']:.0f} tokens/s, "
          f"beam {beam}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
