"""The Ding dictionary (Debian trans-de-en): one ``German :: English`` entry a line.

Most entries are headwords, but many carry example sentences translated by hand, and those are among
the cleanest sentence pairs reachable offline. An entry's sub-entries are separated by `` | `` on both
sides in the same order, so they align by position; only sub-entries that read as sentences on both
sides are kept.
"""

from __future__ import annotations

import re

from mqa_repro.corpus.text import normalize_text

_DING_ANNOT_RE = re.compile(r'\s*(?:\[[^\]]*\]|\{[^}]*\}|<[^>]*>)')
_SENTENCE_END_RE = re.compile(r"[.!?…][\"'’”«»)]*$")
_SENTENCE_START_RE = re.compile(r"^[\"'‘“„»«(¿¡]*[^\W\d_]", re.UNICODE)
_DING_ALT_SPLIT_RE = re.compile(r"(?<=[.!?…\"”“])\s*;\s+")


def _is_sentence(text: str) -> bool:
  return (len(text.split()) >= 2 and bool(_SENTENCE_END_RE.search(text))
          and bool(_SENTENCE_START_RE.match(text)) and text.lstrip("\"'‘“„»«(¿¡")[:1].isupper())


def _alternatives(part: str) -> list[str]:
  return [normalize_text(_DING_ANNOT_RE.sub('', a)) for a in _DING_ALT_SPLIT_RE.split(part)]


def parse_ding_line(line: str) -> list[tuple[str, str]]:
  """Example-sentence pairs (English, German) from one Ding line; dictionary headwords are skipped.

  Sub-entries are aligned by position across " | "; a sub-entry counts when both sides, with [usage labels],
  {grammar} and <search keys> removed, read as sentences (capital start, final punctuation, 2+ words).
  Alternatives joined by "; " are paired in order when both sides have as many, else first with first.
  """
  line = line.rstrip('\n')
  if line.startswith('#') or ' :: ' not in line:
    return []
  de_side, en_side = line.split(' :: ', 1)
  de_parts, en_parts = de_side.split(' | '), en_side.split(' | ')
  if len(de_parts) != len(en_parts):
    return []
  pairs: list[tuple[str, str]] = []
  for de_part, en_part in zip(de_parts, en_parts):
    de_alts, en_alts = _alternatives(de_part), _alternatives(en_part)
    if len(de_alts) != len(en_alts):
      de_alts, en_alts = de_alts[:1], en_alts[:1]
    for de, en in zip(de_alts, en_alts):
      if _is_sentence(de) and _is_sentence(en):
        pairs.append((en, de))
  return pairs


def extract_ding_sentences(text: str) -> list[tuple[str, str]]:
  """Example-sentence pairs (English, German) of a whole Ding file, in file order."""
  return [pair for line in text.splitlines() for pair in parse_ding_line(line)]
