"""The results files, as types: what ``reproduce``, ``bench`` and ``evaluate`` write and ``tables``
reads, field by field, and the one way each is written and read.

The JSON is the interface (the GPU machines write it, the tables and other people's scripts read it),
so the records are ``TypedDict``s: field names are the JSON's own, and a record is a plain dict on
disk and in memory. Writers build them through this module's types; readers go through ``load_*``,
which bring older files (provenance in an earlier layout) to the current one.

Files of a results directory::

  rows/<run>.json            RunRecord      one trained run: model, training curve, every eval
  run.json                   RunHistory     one entry per ``reproduce`` invocation
  data_<task>.json           (data layer)   the text a task's runs trained and were evaluated on
  bench.json                 BenchRecord    the speed benchmark
  hyps/<run>/<split>.<decoding>.txt.xz, refs/<split>.{ref,src}.txt.xz   one line per sentence
"""

from __future__ import annotations

import datetime
import json
import lzma
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypedDict

from mqa_repro import provenance as prov

RUN_SCHEMA = 2
BLEU_KEEP = ('score', 'signature', 'bp', 'sys_len', 'ref_len', 'precisions')


class BleuScore(TypedDict, total=False):
  """sacrebleu's corpus BLEU for one tokenizer ('intl' is the paper's, '13a' sacrebleu's default)."""
  score: float
  signature: str            # e.g. 'nrefs:1|case:mixed|eff:no|tok:intl|smooth:exp|version:2.6.0'
  precisions: list[float]   # n-gram precisions, n = 1..4
  bp: float                 # brevity penalty
  sys_len: int
  ref_len: int
  text: str                 # sacrebleu's one-line summary (not kept in run records)


class ChrfScore(TypedDict, total=False):
  score: float
  signature: str
  text: str


class Perplexity(TypedDict, total=False):
  """A model's loss on an eval split; per-word fields for the LM only (Table 3's unit)."""
  split: str
  nll_sum: float
  tokens: int
  ln_ppl_per_subword: float
  words: int
  word_perplexity: float


class DecodeStats(TypedDict, total=False):
  """What one ``decoding.text.decode_lines`` call did."""
  lines: int
  empty: int                # empty input lines (empty output, the model not run)
  truncated: int            # inputs cut to the position table
  capped: int               # translations whose length limit the position table lowered
  batches: int
  shape: list[int]          # [rows, source width, loop length]: one compiled shape per call
  beam_size: int
  alpha: float
  seconds: float
  output_tokens: int
  tokens_per_second: float


class EvalSplitResult(TypedDict, total=False):
  """One split of one eval group in a run record (``evals[group][role]``)."""
  name: str                 # what the tables call it, e.g. 'newstest2014'
  sentences: int
  scored_sentences: int     # those that fit the position table (perplexity covers these)
  dropped_too_long: int
  ln_ppl: float             # dev only
  tokens: int
  word_ppl: float           # lm dev only
  words: int
  bleu: dict[str, dict[str, BleuScore]]     # decoding ('greedy', 'beam4') -> tokenizer -> score
  chrf: dict[str, ChrfScore]
  decode: dict[str, dict[str, Any]]         # decoding -> call_seconds, call_shape, call_sentences
  sources_truncated: int
  samples: list[dict[str, str]]             # a few (source, reference, hypothesis) of the test set


class RunRecord(TypedDict, total=False):
  """``rows/<run>.json``: one run (table row x seed), schema RUN_SCHEMA."""
  schema: int
  name: str
  task: str
  row: str
  seed: int
  label: str
  in_paper: bool
  size: str
  inputs: str               # hash of the config and eval sets: a rerun compares it
  model: dict[str, Any]     # h, g, d_k, d_v, d_model, d_ff, window, layers, vocab_size
  params: int
  paper_params: int
  train: dict[str, Any]     # steps, curves, final loss, speed, recipe, dropout
  data: dict[str, Any]
  evals: dict[str, dict[str, Any]]   # group -> {'description', 'dev': EvalSplitResult, 'test': ...}
  wall_seconds: dict[str, float]
  provenance: dict[str, Any]


class RunHistory(TypedDict):
  """``run.json``: one entry per ``reproduce`` invocation."""
  history: list[dict[str, Any]]     # {preset, wall_seconds, runs: {run: status}, bench, provenance}


class BenchRecord(TypedDict, total=False):
  """``bench.json``: the speed benchmark (mqa_repro.bench)."""
  provenance: dict[str, Any]
  setting: dict[str, Any]
  hardware: dict[str, Any]          # probes, measured best, datasheet, the roofline's ceilings
  runs: list[dict[str, Any]]        # every sitting of a resumed benchmark: provenance + ceilings
  table2: list[dict[str, Any]]
  sweeps: dict[str, list[dict[str, Any]]]
  kernels: list[dict[str, Any]]
  lm_decode: dict[str, Any]
  profiles: dict[str, Any]
  beam_profiles: dict[str, Any]
  reorder_cost: list[dict[str, Any]]
  stopped: str


class EvaluateRecord(TypedDict, total=False):
  """``mqa-repro evaluate --json``."""
  bleu: dict[str, BleuScore]
  hyp: str
  ref: str
  checkpoint: dict[str, Any]        # workdir, config, task, step, perplexity, bleu, decode
  provenance: dict[str, Any]


def bleu_summary(result: dict[str, BleuScore]) -> dict[str, BleuScore]:
  """BLEU as a run record keeps it: every tokenizer, without sacrebleu's text line."""
  return {tok: {k: r[k] for k in BLEU_KEEP if k in r} for tok, r in result.items()}


# --------------------------------------------------------------------------------------------------
# Writing and reading.


def write_json(path: str | os.PathLike, obj: Any) -> Path:
  """Write via a temporary file and a rename: a run killed mid-write leaves the previous file whole
  (and never a half-written row that a rerun would skip)."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
  os.replace(tmp, path)
  return path


def read_json(path: str | os.PathLike | None) -> dict[str, Any] | None:
  """The JSON object at `path`, or None when there is no such file. A file that is there but not a
  JSON object raises ValueError naming it: treating it as absent would let the next write replace
  what it held (a resumed benchmark, a run history)."""
  if not path or not Path(path).is_file():
    return None
  try:
    obj = json.loads(Path(path).read_text(encoding='utf-8'))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: not a readable JSON file ({e}); repair or move it') from None
  if not isinstance(obj, dict):
    raise ValueError(f'{path}: holds a JSON {type(obj).__name__}, not an object; repair or move it')
  return obj


def _with_provenance(record: dict[str, Any]) -> dict[str, Any]:
  if 'provenance' in record:
    record = {**record, 'provenance': prov.normalize(record['provenance'])}
  return record


def load_run(path: str | os.PathLike) -> RunRecord:
  return _with_provenance(json.loads(Path(path).read_text(encoding='utf-8')))


def load_runs(results: str | os.PathLike) -> list[RunRecord]:
  """Every ``rows/*.json`` of a results directory, in file-name order."""
  return [load_run(f) for f in sorted((Path(results) / 'rows').glob('*.json'))]


def load_bench(results: str | os.PathLike) -> BenchRecord | None:
  record = read_json(Path(results) / 'bench.json')
  if record is None:
    return None
  record = _with_provenance(record)
  if 'runs' in record:
    record['runs'] = [prov.normalize(r) for r in record['runs']]
  return record


def load_history(results: str | os.PathLike) -> RunHistory:
  """``run.json``; a file from before the history existed is its one entry."""
  old = read_json(Path(results) / 'run.json') or {}
  history = old.get('history', [old] if old else [])
  return {'history': [_with_provenance(h) for h in history]}


def write_lines_xz(path: Path, lines: Sequence[str]) -> None:
  """One line per entry, xz-compressed (hypotheses and references are kept with the results)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp')
  with lzma.open(tmp, 'wt', encoding='utf-8') as f:
    f.writelines(line.replace('\n', ' ') + '\n' for line in lines)
  os.replace(tmp, path)


def read_lines_xz(path: Path) -> list[str]:
  with lzma.open(path, 'rt', encoding='utf-8') as f:
    return f.read().split('\n')[:-1]


def split_file_name(split_name: str) -> str:
  """A split's name as hypothesis and reference files spell it ('offline dev' -> 'offline_dev')."""
  return split_name.replace(' ', '_')


ENVIRONMENT_FILE = 'environment.json'


def merge_environment(results_dir: str | os.PathLike, record: dict[str, Any]) -> None:
  """Add an environment record (another folder's ``environment.json``, with its 'previous') to
  ``<results_dir>/environment.json``, so rows merged from there still find theirs by id: every id is
  kept once (as `record` has it, where both have an id), the newest recorded on top, the rest under
  'previous'."""
  path = Path(results_dir) / ENVIRONMENT_FILE
  entries: dict[str, dict[str, Any]] = {}
  for rec in (record, read_json(path) or {}):
    for e in [{k: v for k, v in rec.items() if k != 'previous'}] + list(rec.get('previous', [])):
      if e.get('id'):
        entries.setdefault(e['id'], e)
  if not entries:
    return
  newest, *rest = sorted(entries.values(), key=lambda e: e.get('recorded_utc', ''), reverse=True)
  write_json(path, {**newest, **({'previous': rest} if rest else {})})


def write_environment(results_dir: str | os.PathLike, log: Callable[[str], None] = print
                      ) -> dict[str, Any]:
  """Write (or keep) ``<results_dir>/environment.json`` and return this process' environment.

  The file describes the environment of the newest invocation; when an earlier invocation in the same
  folder ran in a different one, that one is kept under 'previous' (newest first) so rows written
  then still find theirs by id, and the change is logged."""
  env = prov.environment()
  path = Path(results_dir) / ENVIRONMENT_FILE
  old = read_json(path) or {}
  if old.get('id') == env['id']:
    return env
  if old.get('id'):
    log(f"provenance: the environment differs from the one {path} recorded ({old['id']} -> "
        f"{env['id']}); the old one is kept under 'previous'")
  merge_environment(results_dir, {**env, 'recorded_utc': datetime.datetime.now(
      datetime.timezone.utc).isoformat(timespec='seconds')})
  return env
