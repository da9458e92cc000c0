"""The uptraining experiment: a trained multi-head WMT run of the gpu preset converted to G key/value heads
and uptrained for a fraction alpha of its steps, against the same variants trained from scratch for
N (1 + alpha) steps (Ainslie et al. 2023, Figures 5 and 6).

    python scripts/uptrain_experiment.py --source W/wmt_mha_gpu --workdirs W --results results/h200/uptrain \
        --uptrain g1:mean:0.05 g2:mean:0.05 ...    # or --uptrain all, --scratch g1:0.05 ...

Every run uses the gpu preset's training text, vocabulary and token caches (the shared data directory
`reproduce --prepare-data` builds under W) and its eval sets; each is scored (ln(PPL) on both dev sets)
and decoded greedily (BLEU, chrF on every set), its hypotheses kept under --results/hyps/ for the
bootstrap against multi-head. Converted runs keep the source's d_ff, so the from-scratch baselines do
too (unlike Table 1's rows, which are widened to equal parameters). A run whose JSON exists is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mqa_repro import experiment as xp
from mqa_repro import provenance
from mqa_repro import reproduce
from mqa_repro.report import records
from mqa_repro.training import checkpoint, convert, sharding

SCRATCH_ROWS = {1: 'mqa', 2: 'gqa2', 4: 'gqa4'}
ALL_UPTRAIN = ([f'g{g}:mean:{a}' for g in (1, 2, 4) for a in (0.05, 0.1)]
               + [f'g{g}:{i}:0.05' for g in (1, 2, 4) for i in ('first', 'random')])


def _fraction_name(a: float) -> str:
  return f'{a:g}'.replace('.', 'p')


def parse_uptrain(spec: str) -> tuple[int, str, float]:
  """'g1:mean:0.05' -> (1, 'mean', 0.05)."""
  try:
    g, init, a = spec.split(':')
    return int(g.lstrip('g')), init, float(a)
  except ValueError:
    raise ValueError(f'--uptrain {spec!r}: expected gG:INIT:ALPHA, e.g. g1:mean:0.05') from None


def parse_scratch(spec: str) -> tuple[int, float]:
  try:
    g, a = spec.split(':')
    return int(g.lstrip('g')), float(a)
  except ValueError:
    raise ValueError(f'--scratch {spec!r}: expected gG:ALPHA, e.g. g1:0.05') from None


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--source', required=True, help='the trained multi-head run directory')
  p.add_argument('--workdirs', required=True, help="where the gpu preset's shared data lives and runs go")
  p.add_argument('--results', required=True)
  p.add_argument('--uptrain', nargs='*', default=[], help="gG:INIT:ALPHA ... or 'all'")
  p.add_argument('--scratch', nargs='*', default=[], help='gG:ALPHA ...: from scratch for N (1 + ALPHA)')
  p.add_argument('--preset', default='gpu', help="the source's preset (smoke: a CPU check of this script)")
  p.add_argument('--eval-sentences', type=int, default=None)
  args = p.parse_args(argv)
  log = lambda m: print(m, flush=True)  # noqa: E731
  workdirs, results, source = Path(args.workdirs), Path(args.results), Path(args.source)
  uptrain = [parse_uptrain(s) for s in (ALL_UPTRAIN if args.uptrain == ['all'] else args.uptrain)]
  scratch = [parse_scratch(s) for s in args.scratch]

  preset = xp.PRESETS[args.preset]
  options = reproduce.Options(preset=preset.name, eval_sentences=args.eval_sentences, argv=tuple(argv))
  plan = reproduce.task_plan(preset, 'translate', None, log)
  data_dir = reproduce.paper_text_dir()
  groups = xp.eval_groups('translate', plan.source, data_dir, plan.own_eval)
  base = reproduce.run_config(xp.Run('translate', 'mha'), preset, plan, options, data_dir)
  shared = workdirs / f'data_translate_{plan.source}'
  train_data = reproduce.prepare_task('translate', base, shared, log)
  eval_data = {g.key: reproduce.load_eval_data('translate', base, g, train_data, shared, log) for g in groups}
  source_config = checkpoint.config_from_json((source / 'config.json').read_text())
  progress = reproduce.Progress('uptrain', len(uptrain) + len(scratch), log)

  def finish(c, workdir, run, extra, t0):
    c.decode.beam_size = 1                     # greedy only: the comparison is BLEU greedy + ln(PPL)
    mesh = sharding.make_mesh(c.mesh)
    train_seconds, started_at = reproduce.train_run(c, workdir, train_data, mesh, progress, log)
    wall = {'train': train_seconds}
    evals, more = reproduce.evaluate_run(c, workdir, preset, eval_data, groups, results, mesh, progress, log)
    wall.update(more, total=time.time() - t0)
    record = reproduce.run_record(c, run, workdir, evals, wall, inputs='', started_at=started_at)
    record.update(extra, provenance=provenance.collect('scripts/uptrain_experiment.py', argv))
    records.write_json(results / 'rows' / f'{c.name}.json', record)
    progress.stage(f"done in {wall['total']:.0f}s")

  # The source itself, scored and decoded as its converted runs are: the report compares them with
  # this record, so a source retrained on another machine is never mixed with an older record of it.
  if uptrain and not (results / 'rows' / f'{source_config.name}.json').is_file():
    progress.row(0, f'{source_config.name} (the multi-head source)')
    _, params, _ = checkpoint.load_for_inference(source, log=log)
    finish(source_config, source, xp.Run('translate', 'mha'), {
        'variant': {'kv_heads': source_config.model.num_kv_heads, 'init': '–', 'alpha': 0,
                    'kind': 'multi-head source'}, 'fingerprint': convert.params_fingerprint(params)},
           time.time())

  index = 0
  for g, init, a in uptrain:
    index += 1
    name = f'wmt_uptrain_g{g}_{init}_a{_fraction_name(a)}'
    progress.row(index, name)
    if (results / 'rows' / f'{name}.json').is_file():
      progress.stage('skipped: results exist')
      continue
    t0 = time.time()
    workdir = workdirs / name
    if not (workdir / 'converted_from.json').is_file():
      progress.stage(f'convert {source.name} to {g} kv heads ({init})')
      convert.convert_run(source, workdir, g, init=init, fraction=a, log=log)
    c = checkpoint.config_from_json((workdir / 'config.json').read_text())
    conv = json.loads((workdir / 'converted_from.json').read_text())
    finish(c, workdir, xp.Run('translate', 'mha'), {
        'row': f'uptrain_g{g}_{init}', 'variant': {'kv_heads': g, 'init': init, 'alpha': a,
                                                   'kind': 'uptrained'},
        'uptrain': conv}, t0)

  for g, a in scratch:
    index += 1
    steps = round(source_config.train.num_train_steps * (1 + a))
    run = xp.Run('translate', SCRATCH_ROWS[g])
    c = reproduce.run_config(run, preset, plan, reproduce.Options(
        preset=preset.name, steps=steps, eval_sentences=args.eval_sentences,
        overrides=(f'model.d_ff={source_config.model.d_ff}',)), data_dir)
    c.name = f'wmt_scratch_g{g}_s{steps}'
    progress.row(index, c.name)
    if (results / 'rows' / f'{c.name}.json').is_file():
      progress.stage('skipped: results exist')
      continue
    c.data.vocab_path = str(train_data.tokenizer.model_path)
    finish(c, workdirs / c.name, run, {
        'row': f'scratch_g{g}', 'variant': {'kv_heads': g, 'init': 'scratch', 'alpha': a,
                                            'kind': 'from scratch', 'steps': steps}}, time.time())
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
