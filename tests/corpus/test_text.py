"""Normalisation and the cleaning rules (mqa_repro.corpus.text)."""

from __future__ import annotations

from mqa_repro.corpus import text


def test_normalize_text_keeps_lines_aligned() -> None:
  # Every separator str.splitlines() breaks on must go, or one side of a pair would gain a line.
  raw = 'A\u2028B\x85C\x1cD\u00adE\u200bF\tG  H\r\nI'
  assert text.normalize_text(raw) == 'A B C DEF G H I'
  assert text.normalize_text(raw).splitlines() == [text.normalize_text(raw)]
  assert text.normalize_text('Cafe\u0301') == 'Caf\u00e9'  # NFC
  assert text.strip_markup('<b>Bold</b> &amp; <FILE>') == 'Bold & <FILE>'


def test_decode_bytes_falls_back_to_latin1() -> None:
  assert text.decode_bytes('Übersetzung'.encode()) == 'Übersetzung'
  assert text.decode_bytes('Übersetzung'.encode('latin-1')) == 'Übersetzung'


def test_clean_pairs_each_rule() -> None:
  good = ('The weather is nice today.', 'Das Wetter ist heute schön.', 't')
  pairs = [
      good,
      ('  The weather\u2028is nice today. ', 'Das Wetter ist\theute schön.', 't'),  # duplicate after normalising
      ('', 'Leer', 't'),                                                   # empty
      ('12:30 - 13:45', '12:30 – 13:45', 't'),                             # no_text
      (' '.join(['word'] * 251), ' '.join(['Wort'] * 251), 't'),            # too_long
      ('Short', 'Ein sehr viel längerer deutscher Satz', 't'),             # length_ratio
      ('LibreOffice Writer', 'LibreOffice Writer', 't'),                   # untranslated copy
      ('Python Syntax for macros', 'Python Syntax für macros', 't'),       # untranslated: 3/4 tokens shared
  ]
  kept, dropped = text.clean_pairs(pairs)
  assert kept == [text.Pair(*good)]
  assert dropped == {'duplicate': 1, 'empty': 1, 'no_text': 1, 'too_long': 1, 'length_ratio': 1,
                     'untranslated': 2}
  assert set(dropped) <= set(text.CLEAN_RULES)


def test_clean_pairs_dedupes_across_calls() -> None:
  seen: set = set()
  first, _ = text.clean_pairs([('Good morning to you.', 'Guten Morgen dir.')], seen=seen)
  second, dropped = text.clean_pairs([('Good morning to you.', 'Guten Morgen dir.', 'other')], seen=seen)
  assert len(first) == 1 and second == [] and dropped == {'duplicate': 1}


def test_clean_lines() -> None:
  kept, dropped = text.clean_lines(['A line.', '  A   line. ', '', '1 2 3', ' '.join(['w'] * 300), 'Another.'])
  assert kept == ['A line.', 'Another.']
  assert dropped == {'duplicate': 1, 'empty': 1, 'no_text': 1, 'too_long': 1}

