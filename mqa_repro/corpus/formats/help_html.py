"""LibreOffice help pages: the English and German HTML of a page share their paragraph ids.

The help is generated from one XML source per page, and every translatable paragraph keeps its id in
each language, so pairing paragraphs by id aligns whole human-translated paragraphs without any
sentence aligner. The pages are parsed with regular expressions rather than an HTML parser because only
``<p id=...>`` / ``<hN id=...>`` blocks matter and the generated markup is regular.
"""

from __future__ import annotations

import html
import re
from collections import Counter

from mqa_repro.corpus.text import normalize_text

_HELP_BLOCK_RE = re.compile(
    r'<(p|h[1-6]?)\s+id="([^"]+)"([^>]*)>(.*?)</\1\s*>', re.DOTALL | re.IGNORECASE)
_HELP_SKIP_CLASSES = {'code', 'codeintable', 'smathcode', 'bascode', 'example', 'image', 'imageintable',
                      'youtube_consent'}
_TAG_TOKEN_RE = re.compile(r'<(/?)([a-zA-Z][\w-]*)([^<>]*?)(/?)>|<!--.*?-->', re.DOTALL)
_VOID_TAGS = {'br', 'img', 'input', 'hr', 'meta', 'link', 'wbr', 'embed', 'source'}


def _help_inline_text(fragment: str) -> str:
  """Text of a help paragraph's inner HTML, keeping one variant of each platform/module switch.

  `<span class="switchinline">` holds hidden per-platform variants (`id="MAC..."`, `id="WRITER..."`) next to
  `id="default..."`; the viewer's script picks one. We keep the default (or untagged) text and drop the rest so
  a paragraph does not say "LibreOffice - Preferences Tools - Options".
  """
  out: list[str] = []
  skip_depth = 0  # >0 while inside a dropped variant; counts nested tags of any name
  pos = 0
  for m in _TAG_TOKEN_RE.finditer(fragment):
    if skip_depth == 0:
      out.append(fragment[pos:m.start()])
    pos = m.end()
    if m.group(2) is None:  # comment
      continue
    closing, tag, attrs, selfclose = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
    if tag in _VOID_TAGS or selfclose:
      if tag == 'br' and skip_depth == 0:
        out.append(' ')
      continue
    if skip_depth:
      skip_depth += -1 if closing else 1
      continue
    if not closing and 'hidden="true"' in attrs:
      ident = re.search(r'\bid="([^"]*)"', attrs)
      if ident and not ident.group(1).startswith('default'):
        skip_depth = 1
        continue
    out.append(' ' if tag in ('p', 'div', 'td', 'li', 'tr') else '')
  if skip_depth == 0:
    out.append(fragment[pos:])
  return normalize_text(html.unescape(''.join(out)))


def help_paragraphs(page_html: str) -> dict[tuple[str, int], str]:
  """{(paragraph id, occurrence): text} for the translatable paragraphs and headings of a help page."""
  result: dict[tuple[str, int], str] = {}
  seen: Counter = Counter()
  for m in _HELP_BLOCK_RE.finditer(page_html):
    ident, attrs, inner = m.group(2), m.group(3), m.group(4)
    if ident.startswith('bm_'):  # bookmark/index keywords, not prose
      continue
    cls = re.search(r'class="([^"]*)"', attrs)
    if cls and set(cls.group(1).split()) & _HELP_SKIP_CLASSES:
      continue
    occurrence = seen[ident]
    seen[ident] += 1
    text = _help_inline_text(inner)
    if text:
      result[(ident, occurrence)] = text
  return result


def align_help_pages(en_html: str, de_html: str) -> list[tuple[str, str]]:
  """Pairs of paragraphs with the same id (and occurrence number) on the English and German help page."""
  en = help_paragraphs(en_html)
  de = help_paragraphs(de_html)
  return [(text, de[key]) for key, text in en.items() if key in de]
