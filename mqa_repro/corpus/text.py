"""Text shared by every source: normalisation, markup stripping, and the cleaning rules.

Every extracted line passes through :func:`normalize_text` before it is written, because the output
files are line-aligned (line i of ``.en`` is the translation of line i of ``.de``) and any character
that a reader might treat as a line break would shift one side against the other. The cleaning rules
drop what would teach a translation model nothing or something wrong: empty or letterless lines,
concatenated lists, misaligned pairs and untranslated copies.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from typing import Iterable, NamedTuple, Sequence

MAX_WORDS = 250         # longer lines are mostly concatenated lists or tables, not sentences
MAX_LENGTH_RATIO = 2.5  # on characters: German compounds make word ratios unreliable
MAX_COPY_OVERLAP = 0.5  # share of English tokens also on the German side above which a pair is a copy

# The reason a pair is dropped, in the order drop_reason tries them ('duplicate' is checked last, across
# sources); the manifest counts drops under these names.
CLEAN_RULES = ('empty', 'no_text', 'too_long', 'length_ratio', 'untranslated', 'duplicate')


class Pair(NamedTuple):
  en: str
  de: str
  src: str = ''  # the source's name, written to the .src files so every line can be traced back


# --------------------------------------------------------------------------------------------------
# Normalisation

_INVISIBLE_RE = re.compile(r'[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e'
                           r'\u2060-\u2064\ufeff\ufff9-\ufffb]')


def normalize_text(text: str) -> str:
  """NFC, drop invisible control/format characters, collapse every kind of whitespace to one space.

  str.split() also splits on U+2028, U+0085, \\x1c-\\x1f and other separators that str.splitlines()
  treats as line breaks; removing them all keeps the output files line-aligned.
  """
  text = unicodedata.normalize('NFC', text)
  text = _INVISIBLE_RE.sub('', text)
  return ' '.join(text.split())


# Inline markup that gettext catalogues and help pages wrap around text (Pango, HTML, Wesnoth help).
_MARKUP_TAG_RE = re.compile(
    r'</?(?:a|b|big|bold|br|code|em|emphasis|font|format|header|i|img|italic|jump|p|ref|s|small|span|'
    r'strong|sub|sup|tt|u|ul|li|ol|div|literal|filename|command|guimenu|guilabel)\b[^<>]*/?>',
    re.IGNORECASE,
)


def strip_markup(text: str) -> str:
  """Remove known inline markup tags and HTML entities, keep literal `<FILE>`-style placeholders."""
  text = _MARKUP_TAG_RE.sub(' ', text)
  if '&' in text:
    text = html.unescape(text)
  return normalize_text(text)


def decode_bytes(data: bytes) -> str:
  """UTF-8, else Latin-1: old man pages and corpus files predate UTF-8, and Latin-1 never fails."""
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError:
    return data.decode('latin-1')


# --------------------------------------------------------------------------------------------------
# Cleaning

_WORD_RE = re.compile(r'\w+')


def _tokens(text: str) -> list[str]:
  return _WORD_RE.findall(text.lower())


def drop_reason(en: str, de: str) -> str | None:
  """The first cleaning rule that rejects an (already normalised) pair, or None to keep it."""
  if not en or not de:
    return 'empty'
  if not any(c.isalpha() for c in en) or not any(c.isalpha() for c in de):
    return 'no_text'
  if len(en.split()) > MAX_WORDS or len(de.split()) > MAX_WORDS:
    return 'too_long'
  short, long_ = sorted((len(en), len(de)))
  if long_ > MAX_LENGTH_RATIO * short:
    return 'length_ratio'
  if en.casefold() == de.casefold():
    return 'untranslated'
  en_tokens = set(_tokens(en))
  if en_tokens and len(en_tokens & set(_tokens(de))) / len(en_tokens) > MAX_COPY_OVERLAP:
    return 'untranslated'
  return None


def clean_pairs(pairs: Iterable[Sequence[str]], *, seen: set[tuple[str, str]] | None = None
                ) -> tuple[list[Pair], Counter]:
  """Normalise pairs and drop bad ones; returns (kept, counts of drops by rule in CLEAN_RULES).

  Each input is (en, de) or (en, de, src). `seen` carries exact-duplicate detection across calls, so that
  sources cleaned one after another (best first) are deduplicated against each other.
  """
  seen = set() if seen is None else seen
  kept: list[Pair] = []
  dropped: Counter = Counter()
  for item in pairs:
    en, de = normalize_text(item[0]), normalize_text(item[1])
    src = item[2] if len(item) > 2 else ''
    reason = drop_reason(en, de)
    if reason is None:
      if (en, de) in seen:
        reason = 'duplicate'
      else:
        seen.add((en, de))
        kept.append(Pair(en, de, src))
        continue
    dropped[reason] += 1
  return kept, dropped


def clean_lines(lines: Iterable[str], *, seen: set[str] | None = None) -> tuple[list[str], Counter]:
  """Monolingual counterpart of clean_pairs: normalise, drop empty, letterless, over-long and repeated lines."""
  seen = set() if seen is None else seen
  kept: list[str] = []
  dropped: Counter = Counter()
  for line in lines:
    line = normalize_text(line)
    if not line:
      dropped['empty'] += 1
    elif not any(c.isalpha() for c in line):
      dropped['no_text'] += 1
    elif len(line.split()) > MAX_WORDS:
      dropped['too_long'] += 1
    elif line in seen:
      dropped['duplicate'] += 1
    else:
      seen.add(line)
      kept.append(line)
  return kept, dropped
