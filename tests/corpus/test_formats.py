"""Parsers of mqa_repro.corpus.formats, on the samples: one test (or two) per format."""

from __future__ import annotations

import gettext
import io
import json

import pytest

from mqa_repro.corpus.formats import brown, ding, gettext_mo, help_html, nlp_corpus, troff

from .samples import BROWN_TEXT, DING_TEXT, HELP_DE, HELP_EN, MAN_DE, MAN_EN, MO_ENTRIES, write_mo


@pytest.mark.parametrize('big_endian', [False, True])
def test_parse_mo(big_endian: bool) -> None:
  data = write_mo(MO_ENTRIES, big_endian=big_endian)
  pairs = set(gettext_mo.parse_mo(data))
  assert pairs == {
      ('Open the file', 'Die Datei öffnen'),
      ('Save the document', 'Das Dokument speichern'),
      ('%d file was deleted', '%d Datei wurde gelöscht'),
      ('%d files were deleted', '%d Dateien wurden gelöscht'),
      ('Quit the program', 'Programm beenden'),
      ('Insert a new row', 'Neue Zeile einfügen'),
      ('Warning: the disk is full', 'Warnung: der Datenträger ist voll'),
      ('The variable LS_COLORS sets colours.', 'Die Variable LS_COLORS setzt Farben.'),
      ('First paragraph of help.', 'Erster Absatz der Hilfe.'),
      ('Second paragraph of help.', 'Zweiter Absatz der Hilfe.'),
      ('Line one line two of the text', 'Zeile eins Zeile zwei des Textes'),
  }


def test_mo_writer_agrees_with_stdlib_gettext() -> None:
  # Guards the test's own .mo writer, so test_parse_mo checks the parser and not a broken fixture.
  catalog = gettext.GNUTranslations(io.BytesIO(write_mo(MO_ENTRIES)))
  assert catalog.gettext('Open the file') == 'Die Datei öffnen'
  assert catalog.pgettext('menu', 'Save the document') == 'Das Dokument speichern'
  assert catalog.ngettext('%d file was deleted', '%d files were deleted', 2) == '%d Dateien wurden gelöscht'


def test_parse_mo_rejects_garbage() -> None:
  with pytest.raises(ValueError, match='bad magic'):
    gettext_mo.parse_mo(b'\x00' * 64, name='broken.mo')
  with pytest.raises(ValueError, match='too short'):
    gettext_mo.parse_mo(b'\xde\x12\x04\x95', name='tiny.mo')


def test_strip_accelerator() -> None:
  assert gettext_mo.strip_accelerator('_File') == 'File'
  assert gettext_mo.strip_accelerator('An_passen…') == 'Anpassen…'
  assert gettext_mo.strip_accelerator('~Format') == 'Format'
  assert gettext_mo.strip_accelerator('&Open') == 'Open'
  assert gettext_mo.strip_accelerator('Tom &amp; Jerry') == 'Tom &amp; Jerry'
  assert gettext_mo.strip_accelerator('set LS_COLORS') == 'set LS_COLORS'
  assert gettext_mo.strip_accelerator('~/.bashrc') == '~/.bashrc'


def test_align_help_pages() -> None:
  pairs = help_html.align_help_pages(HELP_EN, HELP_DE)
  assert pairs == [
      ('Load/Save options', 'Optionen Laden/Speichern'),
      ('Specifies general & useful settings.', 'Hier legen Sie allgemeine & nützliche Einstellungen fest.'),
      # the hidden macOS variant is dropped, the default one kept
      ('Choose Tools - Options - Load/Save.', 'Wählen Sie Extras – Optionen – Laden/Speichern.'),
      # paragraphs repeating an id pair up by occurrence; <br> becomes a space
      ('First copy of an embedded line.', 'Erste Kopie einer eingebetteten Zeile.'),
      ('Second copy of an embedded line.', 'Zweite Kopie einer eingebetteten Zeile.'),
  ]


def test_parse_ding() -> None:
  pairs = ding.extract_ding_sentences(DING_TEXT)
  assert pairs == [
      ('The house is very big.', 'Das Haus ist sehr groß.'),
      ('Where is your house?', 'Wo ist dein Haus?'),
      ('He is reputed to be rich.', 'Er gilt als reich.'),
      ('He is said to be rich.', 'Man sagt, er sei reich.'),
      ('Come home at once!', 'Komm sofort nach Hause!'),
  ]
  assert ding.parse_ding_line('a | b :: only one') == []  # sub-entry counts differ: no alignment


def test_strip_brown_tags() -> None:
  assert brown.strip_brown_tags('The/at jury/nn said/vbd ./.') == 'The jury said.'
  assert brown.strip_brown_tags('1/2/cd inch/nn') == '1/2 inch'
  sentences = brown.extract_brown_sentences(BROWN_TEXT)
  assert sentences == ['The jury said it did find that many laws "are outmoded".',
                       'He asked: "Who\'s there?"']


def test_extract_nlp_corpus() -> None:
  doc = json.dumps(['One sentence.', 'Two\nlines.', 3])
  assert nlp_corpus.extract_nlp_corpus(doc) == ['One sentence.', 'Two', 'lines.']


def test_align_man_pages() -> None:
  pairs = troff.align_man_pages(MAN_EN, MAN_DE)
  assert pairs == [
      ('cat - concatenate files and print on the standard output',
       'cat - Dateien verketten und auf der Standardausgabe ausgeben'),
      ('Concatenate FILE(s) to standard output.', 'Verkettet DATEI(en) auf die Standardausgabe.'),
      ('-A, --show-all equivalent to -vET', '-A, --show-all gleichbedeutend mit -vET'),
      ('Written by Torbjorn Granlund and Richard M. Stallman.',
       'Geschrieben von Torbjorn Granlund und Richard M. Stallman.'),
  ]
  assert troff.man_blocks('.so man1/other.1\n') is None  # redirects are not pages

