"""Speed benchmark: the paper's Table 2 on the device at hand, every number beside a roofline, and
LM decoding beside the peers a user would pick instead.

    mqa-repro bench [--size paper|tiny] [--variants mha,mqa,mha_local,mqa_local] [--no-sweeps]
                    [--parts greedy,beam,train,lm_decode] [--attention-impl xla|pallas|pallas_all]
                    [--beam-reorder prefix|pallas|full] [--profile DIR] [--kernels]
                    [--reorder-cost ROWS]
                    [--config.KEY=VALUE ...] [--out results/gpu/bench.json]
    mqa-repro bench --parts lm_decode [--lm-batches 1,8,64,1024] [--lm-new-tokens 128,1024]
                    [--lm-variants mha,mqa,gqa2,gqa4] [--peers hf,torch]
    ... [--resume] [--time-budget SECONDS]: a long run in several sittings of one command

Every run first probes the device's ceilings (bench/ceilings.py). Table 2 (bench/table2.py), the
sweeps (sweeps.py), the decode-attention kernels (kernels.py, --kernels alone) and LM decoding
(lm_decode.py, with peers.py) follow as asked: `--parts lm_decode` alone runs LM decoding only.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from mqa_repro import config as cfg
from mqa_repro.bench.lm_decode import LM_SETTINGS, LmDecodeOptions
from mqa_repro.bench.peers import PEERS
from mqa_repro.bench.suite import run_benchmark
from mqa_repro.bench.table2 import PARTS, SETTINGS, VARIANTS
from mqa_repro.cli.common import Parser


def _ints(parser: Parser, flag: str, value: str | None) -> list[int] | None:
  if value is None:
    return None
  try:
    return [int(x) for x in value.split(',') if x]
  except ValueError:
    parser.error(f'{flag} takes comma-separated integers, got {value!r}')


def _names(parser: Parser, flag: str, value: str | None, known) -> list[str] | None:
  if value is None:
    return None
  names = [x for x in value.split(',') if x]
  unknown = [x for x in names if x not in known]
  if unknown:
    parser.error(f'{flag}: unknown {unknown}; choose from {list(known)}')
  return names


def _reorder_cost(parser: Parser, args, argv: Sequence[str]) -> int:
  import json

  from mqa_repro import provenance
  from mqa_repro.bench.reorder import reorder_cost
  from mqa_repro.report import records
  rows = _names(parser, '--reorder-cost', args.reorder_cost, cfg.ROWS['translate']) or ['mha', 'mqa']
  result = {'provenance': provenance.collect('mqa-repro bench', argv), 'reorder_cost': []}
  for row in rows:
    for steps in (None, 48):   # a full-length decode, then the common early-ending case
      result['reorder_cost'].append(reorder_cost(row, steps=steps))
      print(json.dumps(result['reorder_cost'][-1]), flush=True)
      if args.out:
        records.write_json(args.out, result)
  return 0


def build_parser() -> Parser:
  parser = Parser('mqa-repro bench', __doc__.split('\n\n')[0],
                  overrides='the training config of the train part (e.g. '
                            'model.attention_dropout_rate=0.0 to measure what a piece of the step '
                            'costs; recorded in the row)')
  parser.add_argument('--size', default='paper', choices=sorted(SETTINGS))
  parser.add_argument('--variants', default=','.join(VARIANTS),
                      help="Table 2 rows (default: the paper's four); any row of Table 1 too, e.g. "
                           'gqa2,gqa4 for the decoder time at each number of kv heads')
  parser.add_argument('--no-sweeps', action='store_true')
  parser.add_argument('--sweeps-only', action='store_true', help='skip Table 2, run the sweeps')
  parser.add_argument('--profile', default=None,
                      help='trace one greedy decode (and, with train in --parts, two training steps) '
                           'per variant here, and summarise device time per kernel; with lm_decode, '
                           'one more generation of each of our LM points too')
  parser.add_argument('--parts', default=','.join(PARTS),
                      help=f"Table 2 columns to time ({','.join(PARTS)}), and lm_decode for the LM "
                           'decoding benchmark; lm_decode alone runs nothing else')
  parser.add_argument('--out', default=None, help='JSON path (default results/<device>/bench.json)')
  parser.add_argument('--attention-impl', default='xla', choices=cfg.ATTENTION_IMPLS,
                      help="decode attention: XLA einsums or the Pallas kernel (mqa_repro.kernels)")
  parser.add_argument('--beam-reorder', default=None, choices=('prefix', 'pallas', 'full'),
                      help="beam search's cache reorder: XLA's gather of the written slots, the Pallas "
                           "in-place kernel, or whole leaves (default: pallas with a pallas "
                           "--attention-impl, else prefix)")
  parser.add_argument('--kernels', action='store_true',
                      help='only the decode-attention microbenchmark (XLA vs Pallas tunings)')
  parser.add_argument('--reorder-cost', default=None, metavar='ROWS',
                      help="only beam search's cache reorder, per scheme, on random translate models "
                           "of these rows (e.g. mha,mqa): a full-length decode and one ending at 48 "
                           "of 128 slots (bench/reorder.py)")
  parser.add_argument('--no-torch-probes', action='store_true',
                      help="leave torch's copy and matmul out of the ceiling probes")
  for flag, key in (('--lengths', 'length'), ('--batches', 'batch'), ('--kv-heads', 'kv_heads')):
    parser.add_argument(flag, default=None, dest=key,
                        help=f'sweep points, comma-separated (default SWEEPS[size][{key!r}]; "" = none)')
  lm = parser.add_argument_group('LM decoding (--parts lm_decode)')
  lm.add_argument('--lm-batches', default=None,
                  help=f"batch sizes (default {LM_SETTINGS['paper']['batches']} at paper size)")
  lm.add_argument('--lm-new-tokens', default=None,
                  help=f"tokens to generate (default {LM_SETTINGS['paper']['new_tokens']})")
  lm.add_argument('--lm-variants', default=None,
                  help=f"LM rows (default {LM_SETTINGS['paper']['variants']})")
  lm.add_argument('--peers', default=','.join(PEERS),
                  help='peers to time beside ours: hf (transformers, static cache), torch (our LM in '
                       'compiled PyTorch); "" = none. Skipped with a note when torch is missing')
  lm.add_argument('--lm-repeats', type=int, default=3, help='timed generations per point (median)')
  parser.add_argument('--resume', action='store_true',
                      help="keep --out's Table 2 rows, LM decoding points, kernel timings and sweep "
                           'points (same setting) and measure only the missing ones; the parts this '
                           'run does not measure stay in the file')
  parser.add_argument('--time-budget', type=float, default=None, metavar='SECONDS',
                      help='start no Table 2 variant, LM decoding point, kernel timing or sweep point '
                           'that would end past this many seconds; with --resume, rerunning the same '
                           'command continues')
  return parser


def main(argv: Sequence[str]) -> int:
  parser = build_parser()
  if any(a.startswith('--train-set') for a in argv):
    parser.error('--train-set KEY=VALUE is now --config.KEY=VALUE (the one override syntax)')
  args, overrides = parser.parse(argv)
  points = {key: _ints(parser, flag, getattr(args, key)) for flag, key in
            (('--lengths', 'length'), ('--batches', 'batch'), ('--kv-heads', 'kv_heads'))}
  points = {k: v for k, v in points.items() if v is not None}
  variants = _names(parser, '--variants', args.variants, cfg.ROWS['translate'])
  parts = _names(parser, '--parts', args.parts, PARTS + ('lm_decode',))
  lm_only = parts == ['lm_decode']
  lm = None
  if 'lm_decode' in parts:
    lm = LmDecodeOptions(
        batches=_ints(parser, '--lm-batches', args.lm_batches),
        new_tokens=_ints(parser, '--lm-new-tokens', args.lm_new_tokens),
        variants=_names(parser, '--lm-variants', args.lm_variants, cfg.ROWS['lm']),
        peers=_names(parser, '--peers', args.peers, PEERS), attention_impl=args.attention_impl,
        repeats=args.lm_repeats, profile_dir=args.profile)
    if lm.peers:
      # JAX would otherwise take 75% of the GPU's memory up front and starve the torch peers; set
      # before anything touches a device
      os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  if args.reorder_cost is not None:
    return _reorder_cost(parser, args, argv)
  try:  # fail before any timing, naming the bad key
    cfg.apply_overrides(cfg.row_config('translate', (variants or ['mha'])[0], args.size), overrides)
  except ValueError as e:
    parser.error(str(e))
  import jax
  out = args.out or f"results/{'gpu' if jax.devices()[0].platform == 'gpu' else 'cpu'}/bench.json"
  run_benchmark(args.size, variants, not (args.no_sweeps or args.kernels or lm_only), out, argv,
                table2=not (args.sweeps_only or args.kernels or lm_only), profile_dir=args.profile,
                parts=parts, kernels=args.kernels, sweep_points=points, train_overrides=overrides,
                attention_impl=args.attention_impl,
                beam_reorder=args.beam_reorder,
                lm_decode=lm, torch_probes=not args.no_torch_probes, resume=args.resume,
                time_budget=args.time_budget)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
