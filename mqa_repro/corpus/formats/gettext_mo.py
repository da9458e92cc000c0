"""GNU gettext .mo catalogues: a German catalogue pairs each English msgid with its German msgstr.

The compiled .mo files are what Debian packages ship (the .po sources are not in binary packages), so
the binary format is read directly: the standard library's :mod:`gettext` is made for looking strings
up, not for listing a catalogue. UI strings carry keyboard accelerators and inline markup that would otherwise end up in the
corpus as noise (``_File``, ``<b>Warning:</b>``), so both are stripped here.
"""

from __future__ import annotations

import re
import struct

from mqa_repro.corpus.text import strip_markup

_MO_MAGIC_LE = 0x950412DE
_MO_SKIP_IDS = {'translator-credits', 'translator_credits', 'TRANSLATORS', 'Your names', 'Your emails'}
_AMP_ACCEL_RE = re.compile(r'(?<!\w)&(?=[^\W\d_])(?!\w+;)')  # KDE-style "&File", not "&amp;"


def read_mo_catalog(data: bytes, *, name: str = '<mo>') -> list[tuple[str, str]]:
  """Raw (msgid, msgstr) entries of a GNU .mo file, header entry included, in file order.

  Format (GNU gettext manual, "The Format of GNU MO Files"): magic, revision, N, offset of the original-string
  table, offset of the translation table; each table holds N (length, offset) pairs of uint32.
  """
  if len(data) < 20:
    raise ValueError(f'{name}: too short to be a .mo file')
  for order in ('<', '>'):
    magic, revision, n, orig_off, trans_off = struct.unpack_from(order + '5I', data)
    if magic == _MO_MAGIC_LE:
      break
  else:
    raise ValueError(f'{name}: not a GNU .mo file (bad magic number)')
  if revision >> 16 not in (0, 1):
    raise ValueError(f'{name}: unsupported .mo major revision {revision >> 16}')
  if orig_off + 8 * n > len(data) or trans_off + 8 * n > len(data):
    raise ValueError(f'{name}: string tables run past the end of the file')
  raw: list[tuple[bytes, bytes]] = []
  for i in range(n):
    olen, ooff = struct.unpack_from(order + '2I', data, orig_off + 8 * i)
    tlen, toff = struct.unpack_from(order + '2I', data, trans_off + 8 * i)
    if ooff + olen > len(data) or toff + tlen > len(data):
      raise ValueError(f'{name}: entry {i} points past the end of the file')
    raw.append((data[ooff:ooff + olen], data[toff:toff + tlen]))
  charset = 'utf-8'
  for msgid, msgstr in raw:
    if msgid == b'':  # the header: "Content-Type: text/plain; charset=..."
      m = re.search(rb'charset=([\w.-]+)', msgstr)
      if m and m.group(1).lower() not in (b'charset', b'char'):
        charset = m.group(1).decode('ascii')
      break
  try:
    ''.encode(charset)
  except LookupError:
    charset = 'utf-8'
  return [(a.decode(charset, 'replace'), b.decode(charset, 'replace')) for a, b in raw]


def strip_accelerator(text: str) -> str:
  """Drop a keyboard accelerator mark: `_File`, `An_passen`, `~File` (LibreOffice), `&File` (KDE).

  Only a string's single `_`/`~` before a letter or digit counts, and not between two capitals or digits, so
  identifiers such as LS_COLORS survive.
  """
  for mark in '_~':
    if text.count(mark) == 1:
      i = text.index(mark)
      prev, nxt = text[i - 1:i], text[i + 1:i + 2]
      if nxt.isalnum() and not ((prev.isupper() or prev.isdigit()) and (nxt.isupper() or nxt.isdigit())):
        text = text[:i] + text[i + 1:]
  return _AMP_ACCEL_RE.sub('', text) if '&' in text else text


def _clean_ui_string(text: str) -> str:
  return strip_markup(strip_accelerator(text))


def _paragraphs(text: str) -> list[str]:
  return [p for p in re.split(r'\n[ \t]*\n', text.strip('\n')) if p.strip()]


def parse_mo(data: bytes, *, name: str = '<mo>') -> list[tuple[str, str]]:
  """English–German pairs from a German .mo catalogue (msgid English, msgstr German).

  Context prefixes (`ctx\\x04`) are dropped. Plural entries give (singular, form 0) and (plural, form 1), which
  are German's singular and plural forms. Untranslated entries (empty msgstr) and the header are skipped;
  msgfmt already leaves fuzzy entries out of .mo files. Multi-paragraph messages (e.g. --help texts) are split
  at blank lines when both sides have the same number of paragraphs.
  """
  pairs: list[tuple[str, str]] = []
  for msgid, msgstr in read_mo_catalog(data, name=name):
    if not msgid or not msgstr.strip('\x00 \n'):
      continue
    msgid = msgid.rsplit('\x04', 1)[-1]
    ids = msgid.split('\x00')
    forms = msgstr.split('\x00')
    for en, de in zip(ids, forms):
      if not de.strip() or en.strip() in _MO_SKIP_IDS:
        continue
      en_par, de_par = _paragraphs(en), _paragraphs(de)
      if len(en_par) != len(de_par) or len(en_par) < 2:
        en_par, de_par = [en], [de]
      for e, d in zip(en_par, de_par):
        e, d = _clean_ui_string(e), _clean_ui_string(d)
        if e and d:
          pairs.append((e, d))
  return pairs
