"""Man pages (troff, man(7) macros): an English page and its German translation, aligned by structure.

manpages-de's German pages are po4a translations made paragraph by paragraph from the English page,
so, when both come from the same version, the n-th paragraph of one translates the n-th of the other.
Only as much troff is interpreted as that needs: paragraph breaks, headings, font macros and the
escapes that stand for characters; layout requests are dropped. The alignment is structural, not
semantic, so the sources registry keeps this source out of dev/test.
"""

from __future__ import annotations

import re

from mqa_repro.corpus.text import normalize_text

_TROFF_NAMED = {
    'em': '—', 'en': '–', 'hy': '-', 'aq': "'", 'dq': '"', 'lq': '“', 'rq': '”', 'oq': '‘', 'cq': '’',
    'Fo': '«', 'Fc': '»', 'fo': '‹', 'fc': '›', 'bu': '•', 'co': '©', 'rg': '®', 'tm': '™', 'de': '°',
    'mu': '×', 'di': '÷', '+-': '±', '<=': '≤', '>=': '≥', '!=': '≠', '->': '→', '<-': '←', 'ti': '~',
    'ha': '^', 'rs': '\\', 'sl': '/', 'ga': '`', 'aa': '´', 'bq': '„', 'Bq': '„', 'ss': 'ß', 'pc': '·',
    ':a': 'ä', ':o': 'ö', ':u': 'ü', ':A': 'Ä', ':O': 'Ö', ':U': 'Ü', ':e': 'ë', ':i': 'ï', "'e": 'é',
    '`e': 'è', '^e': 'ê', "'a": 'á', '`a': 'à', '^a': 'â', ',c': 'ç', '~n': 'ñ', 'r!': '¡', 'r?': '¿',
    'sc': '§',
    'lh': '☜', 'rh': '☞', 'ba': '|', 'br': '│', 'ul': '_', 'ci': '○', 'sq': '□', 'dg': '†', 'Eu': '€',
    'eu': '€', 'Po': '£', 'Ye': '¥', 'ct': '¢', 'ps': '¶', '%0': '‰', '12': '½', '14': '¼', '34': '¾',
}
_TROFF_ESCAPE_RE = re.compile(
    r'\\(?:'
    r'\((?P<c2>..)'                          # \(xx
    r'|\[(?P<cb>[^\]]*)\]'                    # \[name], \[u00E4]
    r'|\*(?:\((?P<s2>..)|\[(?P<sb>[^\]]*)\]|(?P<s1>.))'  # strings \*x \*(xx \*[name]
    r'|f(?:\(..|\[[^\]]*\]|.)'                 # fonts
    r'|[sS][+-]?(?:\d+|\(\d\d|\[[^\]]*\])'      # size changes
    r'|[nmFgkYV](?:\(..|\[[^\]]*\]|.)'         # registers, colours, ...
    r"|[hvwlLNbDoxXZRCAu]'[^']*'"              # escapes with a quoted argument
    r"|(?P<lit>[-e\\.'`])"                     # literal characters
    r'|(?P<space>[ ~0])'                       # spaces
    r'|[&|^:%c,/!tdupra}{=zkj]'                # zero-width or layout-only escapes
    r')'
)
_TROFF_STRINGS = {'lq': '“', 'rq': '”', 'R': '®', 'Tm': '™', 'C+': 'C++', 'Aq': "'", 'dq': '"'}
_MAN_BREAK_MACROS = {'PP', 'P', 'LP', 'TP', 'IP', 'HP', 'RS', 'RE', 'sp', 'TQ', 'Sh', 'Ss', 'Pp', 'It',
                     'EX', 'EE', 'SY', 'YS', 'in', 'ti', 'bp', 'ne', 'ns', 'rs'}
_MAN_FONT_MACROS = {'B', 'I', 'SM', 'SB', 'R'}
_MAN_ALT_MACROS = {'BR', 'BI', 'IR', 'IB', 'RB', 'RI'}
# Blocks that are not translated prose (code, tables, equations, macro definitions): start -> end request.
_MAN_SKIP_BLOCKS = {'nf': 'fi', 'EX': 'EE', 'TS': 'TE', 'EQ': 'EN', 'de': '..', 'ig': '..'}


def _troff_escape(m: re.Match) -> str:
  if m.group('c2') is not None:
    return _TROFF_NAMED.get(m.group('c2'), '')
  if m.group('cb') is not None:
    name = m.group('cb')
    if re.fullmatch(r'u[0-9A-Fa-f]{4,6}', name):
      return chr(int(name[1:], 16))
    return _TROFF_NAMED.get(name, '')
  for g in ('s2', 'sb', 's1'):
    if m.group(g) is not None:
      return _TROFF_STRINGS.get(m.group(g), '')
  if m.group('lit') is not None:
    return {'e': '\\'}.get(m.group('lit'), m.group('lit'))
  if m.group('space') is not None:
    return ' '
  return ''


def _troff_text(line: str) -> str:
  return _TROFF_ESCAPE_RE.sub(_troff_escape, line).replace('``', '“').replace("''", '”')


def _macro_args(rest: str) -> list[str]:
  args, cur, quoted, i = [], '', False, 0
  while i < len(rest):
    ch = rest[i]
    if ch == '"':
      if quoted and rest[i + 1:i + 2] == '"':
        cur += '"'
        i += 1
      else:
        quoted = not quoted
    elif ch in ' \t' and not quoted:
      if cur:
        args.append(cur)
      cur = ''
    else:
      cur += ch
    i += 1
  if cur:
    args.append(cur)
  return args


def man_blocks(troff: str) -> list[tuple[str, str]] | None:
  """[(kind, text)] of a man(7) page: 'H' for .SH headings, 'P' for paragraphs, tags and sub-headings.

  Returns None for pages that cannot be aligned structurally (.so redirects, mdoc pages). Code blocks
  (.nf/.fi, .EX/.EE), tables and macro definitions are left out: they are not translated prose.
  """
  blocks: list[tuple[str, str]] = []
  cur: list[str] = []
  skip_until: str | None = None

  def flush(kind: str = 'P') -> None:
    text = normalize_text(' '.join(cur))
    if text:
      blocks.append((kind, text))
    cur.clear()

  for raw in troff.splitlines():
    line = re.sub(r'\\".*$', '', raw) if '\\"' in raw else raw
    if raw.startswith(('.\\"', "'\\\"")):
      continue
    if line[:1] in ('.', "'"):
      parts = line[1:].strip().split(None, 1)
      if not parts:
        continue
      macro, rest = parts[0], (parts[1] if len(parts) > 1 else '')
      if skip_until is not None:
        if macro == skip_until or (skip_until == '..' and macro == '.'):
          skip_until = None
        continue
      if macro in ('so', 'Dd', 'Dt'):
        return None  # a redirect, or an mdoc page
      if macro in _MAN_SKIP_BLOCKS:
        flush()
        skip_until = _MAN_SKIP_BLOCKS[macro]
        continue
      if macro in ('SH', 'SS'):
        flush()
        cur.append(_troff_text(' '.join(_macro_args(rest))))
        flush('H' if macro == 'SH' else 'P')
        continue
      if macro in _MAN_BREAK_MACROS:
        flush()
        if macro == 'IP' and rest:
          args = _macro_args(rest)
          if args:
            cur.append(_troff_text(args[0]))
            flush()
        continue
      if macro in _MAN_FONT_MACROS:
        cur.append(_troff_text(' '.join(_macro_args(rest))))
      elif macro in _MAN_ALT_MACROS:
        cur.append(_troff_text(''.join(_macro_args(rest))))
      continue  # other requests (and URL macros .UR/.MT, whose text lines follow) set layout only
    if skip_until is not None:
      continue
    if not line.strip():
      flush()
      continue
    cur.append(_troff_text(line))
  flush()
  return blocks


def align_man_pages(en_troff: str, de_troff: str) -> list[tuple[str, str]]:
  """Pair blocks of an English man page and its German translation by position.

  po4a translations keep the structure of the English page they were made from; when the English page is a
  different version, whole-page block counts differ, so we fall back to pairing sections (.SH) whose block
  counts agree. This is structural, not semantic, alignment: a few pairs can still be wrong.
  """
  en, de = man_blocks(en_troff), man_blocks(de_troff)
  if not en or not de:
    return []
  # manpages-de appends a section crediting the translators ("ÜBERSETZUNG"); it has no English side.
  heads = [i for i, (kind, _) in enumerate(de) if kind == 'H']
  if heads and 'ÜBERSETZ' in de[heads[-1]][1].upper():
    de = de[:heads[-1]]
  if len(en) == len(de):
    return [(e, d) for (ek, e), (dk, d) in zip(en, de) if ek == dk and ek == 'P']

  def sections(blocks: list[tuple[str, str]]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for kind, text in blocks:
      if kind == 'H':
        out.append([])
      else:
        out[-1].append(text)
    return out

  en_sec, de_sec = sections(en), sections(de)
  if len(en_sec) != len(de_sec):
    return []
  return [(e, d) for es, ds in zip(en_sec, de_sec) if len(es) == len(ds) for e, d in zip(es, ds)]
