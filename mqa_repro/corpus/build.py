"""Build the corpus: collect every source, clean and deduplicate, split, write the files and a manifest.

    OUT/en_de/{train,dev,test}.{en,de,src}   (.src: the source tag of each line)
    OUT/english/{train,dev,test}.txt
    OUT/MANIFEST.json                         options, package versions, per-source counts
    OUT/cache/{deb,npm}/                      the downloaded packages, reused by rebuilds

The manifest is also the mark of a complete build: it is removed before a build starts and written
last, so a directory whose manifest has this builder version and the same options is reused as it is.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

from mqa_repro.corpus.sources import DEFAULT_SOURCES, SOURCES
from mqa_repro.corpus.split import Split, split_deterministic
from mqa_repro.corpus.text import Pair, clean_lines, clean_pairs

# Bump whenever extraction, cleaning or splitting changes: a cached build with another version is rebuilt.
BUILDER_VERSION = '1.0.0'
# The manifest's name for the builder, unchanged by the move into mqa_repro.corpus so that a build made
# before it has an equal manifest; BUILDER_VERSION, not this, decides whether a build is reused.
BUILDER_NAME = 'mqa_repro.data.offline_corpus'

EVAL_MIN_WORDS = 4  # dev/test pairs need this many English words: BLEU on one-word UI labels says little
SPLITS = ('train', 'dev', 'test')

Log = Callable[[str], None]
Line = tuple[str, str]  # an English line and the name of its source


def offline_corpus_paths(out_dir: str | os.PathLike) -> dict:
  """Paths of the built files: {'translate': {split: (en, de)}, 'lm': {split: path}}."""
  out = Path(out_dir)
  return {
      'translate': {s: (str(out / 'en_de' / f'{s}.en'), str(out / 'en_de' / f'{s}.de')) for s in SPLITS},
      'lm': {s: str(out / 'english' / f'{s}.txt') for s in SPLITS},
  }


def _all_paths(out: Path) -> list[Path]:
  return ([out / 'en_de' / f'{s}.{ext}' for s in SPLITS for ext in ('en', 'de', 'src')]
          + [out / 'english' / f'{s}.txt' for s in SPLITS])


def _options(seed: int, dev_size: int, test_size: int, sources: Sequence[str]) -> dict:
  return {'seed': seed, 'dev_size': dev_size, 'test_size': test_size, 'sources': list(sources)}


def _load_valid_manifest(out: Path, options: dict) -> dict | None:
  path = out / 'MANIFEST.json'
  if not path.is_file():
    return None
  try:
    manifest = json.loads(path.read_text(encoding='utf-8'))
  except (OSError, ValueError):
    return None
  if manifest.get('builder_version') != BUILDER_VERSION or manifest.get('options') != options:
    return None
  if not all(p.is_file() for p in _all_paths(out)):
    return None
  return manifest


def _source_names(sources: Sequence[str] | None) -> list[str]:
  names = list(DEFAULT_SOURCES if sources is None else sources)
  unknown = [n for n in names if n not in SOURCES]
  if unknown:
    raise ValueError(f'unknown offline-corpus source(s) {unknown}; known: {list(SOURCES)}')
  names = [n for n in SOURCES if n in names]  # canonical order: it decides which duplicate survives
  if not any(SOURCES[n].kind == 'pairs' for n in names) or not any(SOURCES[n].kind == 'mono' for n in names):
    raise ValueError('sources must include at least one parallel and one monolingual source; '
                     f'got {names}')
  return names


def _collect(names: Sequence[str], cache: Path, log: Log
             ) -> tuple[list[Pair], list[Line], dict[str, dict], dict[str, str]]:
  """Every source's items, cleaned and deduplicated across sources; per-source stats; package versions."""
  versions: dict[str, str] = {}
  stats: dict[str, dict] = {}
  pairs: list[Pair] = []
  lines: list[Line] = []
  seen_pairs: set[tuple[str, str]] = set()
  seen_lines: set[str] = set()
  for name in names:
    source = SOURCES[name]
    t0 = time.time()
    result = source.collect(cache, log)
    versions.update(result.packages)
    if source.kind == 'pairs':
      kept, dropped = clean_pairs(((en, de, name) for en, de in result.items), seen=seen_pairs)
      pairs.extend(kept)
    else:
      kept_lines, dropped = clean_lines(result.items, seen=seen_lines)
      kept = [(line, name) for line in kept_lines]
      lines.extend(kept)
    stats[name] = {'kind': source.kind, 'extracted': len(result.items), 'kept': len(kept),
                   'dropped': dict(sorted(dropped.items())), 'eval_ok': source.eval_ok,
                   'packages': sorted(result.packages)}
    log(f'  {name:11s} extracted {len(result.items):7d}  kept {len(kept):7d}  '
        f'dropped {dict(sorted(dropped.items()))}  ({time.time() - t0:.1f}s)')
  return pairs, lines, stats, versions


def _write_lines(path: Path, lines: Iterable[str]) -> None:
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'w', encoding='utf-8', newline='\n') as f:
    for line in lines:
      f.write(line)
      f.write('\n')
  tmp.replace(path)


def _write_splits(out: Path, pair_split: Split, line_split: Split, stats: dict[str, dict]
                  ) -> dict[str, dict[str, int]]:
  """Writes the files, adds each source's per-split counts to `stats`; returns the counts per corpus."""
  (out / 'en_de').mkdir(exist_ok=True)
  (out / 'english').mkdir(exist_ok=True)
  counts: dict[str, dict[str, int]] = {'en_de': {}, 'english': {}}
  for split in SPLITS:
    items: list[Pair] = getattr(pair_split, split)
    _write_lines(out / 'en_de' / f'{split}.en', (p.en for p in items))
    _write_lines(out / 'en_de' / f'{split}.de', (p.de for p in items))
    _write_lines(out / 'en_de' / f'{split}.src', (p.src for p in items))
    mono: list[Line] = getattr(line_split, split)
    _write_lines(out / 'english' / f'{split}.txt', (x[0] for x in mono))
    counts['en_de'][split] = len(items)
    counts['english'][split] = len(mono)
    for tag, n in Counter(p.src for p in items).items():
      stats[tag].setdefault('splits', {})[split] = n
    for tag, n in Counter(x[1] for x in mono).items():
      stats[tag].setdefault('splits', {})[split] = n
  counts['en_de']['removed_overlap_with_eval'] = pair_split.removed_overlap
  counts['english']['removed_overlap_with_eval'] = line_split.removed_overlap
  return counts


def _count_lines(path: Path) -> int:
  with open(path, 'rb') as f:
    return sum(1 for _ in f)


def build_offline_corpus(out_dir: str | os.PathLike, *, seed: int = 0, dev_size: int = 2000,
                         test_size: int = 2000, sources: Sequence[str] | None = None, force: bool = False,
                         log: Log = print) -> dict:
  """Build (or reuse) the offline en–de and English corpora under `out_dir`; returns the manifest.

  If OUT/MANIFEST.json exists for the same builder version and options (seed, sizes, sources) and all output
  files exist, nothing is rebuilt unless `force`. Downloads are cached in OUT/cache/ and reused by rebuilds.
  `sources` picks from SOURCES (default: all); at least one parallel and one monolingual source is needed.
  """
  out = Path(out_dir)
  names = _source_names(sources)
  options = _options(seed, dev_size, test_size, names)
  if not force:
    manifest = _load_valid_manifest(out, options)
    if manifest is not None:
      log(f'offline corpus: up to date in {out} (builder {BUILDER_VERSION}); not rebuilding')
      return manifest

  start = time.time()
  out.mkdir(parents=True, exist_ok=True)
  (out / 'MANIFEST.json').unlink(missing_ok=True)  # a half-written build must never look complete
  log(f"offline corpus: building in {out} from {', '.join(names)}")
  pairs, lines, stats, versions = _collect(names, out / 'cache', log)

  pair_split = split_deterministic(
      pairs, dev_size=dev_size, test_size=test_size, seed=seed, key=lambda p: f'{p.en}\t{p.de}',
      sides=lambda p: (p.en, p.de),
      eval_ok=lambda p: SOURCES[p.src].eval_ok and len(p.en.split()) >= EVAL_MIN_WORDS)
  line_split = split_deterministic(
      lines, dev_size=dev_size, test_size=test_size, seed=seed, key=lambda x: x[0], sides=lambda x: (x[0],))
  counts = _write_splits(out, pair_split, line_split, stats)

  manifest = {
      'builder': BUILDER_NAME,
      'builder_version': BUILDER_VERSION,
      'options': options,
      'build_date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'build_seconds': round(time.time() - start, 1),
      'counts': counts,
      'sources': stats,
      'packages': dict(sorted(versions.items())),
      'files': {str(p.relative_to(out)): _count_lines(p) for p in _all_paths(out)},
  }
  tmp = out / 'MANIFEST.json.tmp'
  tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + '\n', encoding='utf-8')
  tmp.replace(out / 'MANIFEST.json')
  log(f"offline corpus: en_de train {counts['en_de']['train']} / dev {counts['en_de']['dev']} / test "
      f"{counts['en_de']['test']} pairs; english train {counts['english']['train']} / dev "
      f"{counts['english']['dev']} / test {counts['english']['test']} lines ({manifest['build_seconds']}s)")
  return manifest
