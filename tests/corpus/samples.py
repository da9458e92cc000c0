"""Small samples of every source format, written in the tests so that nothing is downloaded."""

from __future__ import annotations

import struct


def write_mo(entries: dict[str, str], *, big_endian: bool = False,
             header: str = 'Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n'
             ) -> bytes:
  """A GNU .mo file: 7-word header, sorted original/translation tables of (length, offset), NUL-terminated strings."""
  items = sorted({'': header, **entries}.items(), key=lambda kv: kv[0].encode())
  order = '>' if big_endian else '<'
  n = len(items)
  orig_table, trans_table = 28, 28 + 8 * n
  data_start = 28 + 16 * n
  blob = bytearray()
  orig, trans = [], []
  for table, idx in ((orig, 0), (trans, 1)):
    for kv in items:
      s = kv[idx].encode()
      table.append((len(s), data_start + len(blob)))
      blob += s + b'\0'
  out = bytearray(struct.pack(order + '7I', 0x950412DE, 0, n, orig_table, trans_table, 0, 0))
  for length, offset in orig + trans:
    out += struct.pack(order + '2I', length, offset)
  return bytes(out + blob)


MO_ENTRIES = {
    'Open the file': 'Die Datei öffnen',
    'menu\x04Save the document': 'Das Dokument speichern',          # msgctxt
    '%d file was deleted\x00%d files were deleted': '%d Datei wurde gelöscht\x00%d Dateien wurden gelöscht',
    'Not translated yet': '',                                         # untranslated: skipped
    '_Quit the program': 'Programm _beenden',                         # GTK accelerator
    '~Insert a new row': 'Neue Zeile ~einfügen',                      # LibreOffice accelerator
    '<b>Warning:</b> the disk is full': '<b>Warnung:</b> der Datenträger ist voll',
    'The variable LS_COLORS sets colours.': 'Die Variable LS_COLORS setzt Farben.',
    'First paragraph of help.\n\nSecond paragraph of help.': 'Erster Absatz der Hilfe.\n\nZweiter Absatz der Hilfe.',
    'translator-credits': 'Erika Mustermann',
    # separators that str.splitlines() breaks on must not break the line-aligned output files
    'Line one\u2028line two of the text': 'Zeile eins\x85Zeile zwei des Textes',
}

HELP_EN = """<!DOCTYPE html>
<html lang="en-US" dir="ltr"><head><title>Options</title></head><body>
<div id="DisplayArea">
<p id="bm_id123" class="bm_module">WRITER</p>
  <h1 id="hd_id1" dir="auto">Load/Save options</h1>
  <p id="par_id2" class="paragraph" dir="auto"><a name="x"></a><span class="avis">Specifies general &amp; useful settings.</span></p>
  <p id="par_id3" class="paragraph" dir="auto">Choose <span id="swln1" class="switchinline"><span hidden="true" id="MACtextshared1" class="MAC"><span class="emph">LibreOffice - Preferences</span></span><span hidden="true" id="defaulttextshared1"><span class="emph">Tools - Options</span></span></span><span class="emph"> - Load/Save</span>.</p>
  <p id="par_id4" class="code">print("hello")</p>
  <p id="par_id5" class="paragraph">Only in the English page.</p>
  <p id="par_id6" class="paragraph">First copy<br>of an embedded line.</p>
  <p id="par_id6" class="paragraph">Second copy of an embedded line.</p>
</div></body></html>
"""
HELP_DE = """<!DOCTYPE html>
<html lang="de" dir="ltr"><head><title>Optionen</title></head><body>
<div id="DisplayArea">
<p id="bm_id123" class="bm_module">WRITER</p>
  <h1 id="hd_id1" dir="auto">Optionen Laden/Speichern</h1>
  <p id="par_id2" class="paragraph" dir="auto"><a name="x"></a><span class="avis">Hier legen Sie allgemeine &amp; nützliche Einstellungen fest.</span></p>
  <p id="par_id3" class="paragraph" dir="auto">Wählen Sie <span id="swln1" class="switchinline"><span hidden="true" id="MACtextshared1" class="MAC"><span class="emph">LibreOffice – Einstellungen</span></span><span hidden="true" id="defaulttextshared1"><span class="emph">Extras – Optionen</span></span></span><span class="emph"> – Laden/Speichern</span>.</p>
  <p id="par_id4" class="code">print("hallo")</p>
  <p id="par_id6" class="paragraph">Erste Kopie einer eingebetteten Zeile.</p>
  <p id="par_id6" class="paragraph">Zweite Kopie einer eingebetteten Zeile.</p>
</div></body></html>
"""

DING_TEXT = """# Version :: test
Haus {n} [arch.] | Häuser {pl} | Das Haus ist sehr groß. | Wo ist dein Haus? :: house | houses | The house is very big. | Where is your house? [Br.]
Er gilt als reich.; Man sagt, er sei reich. :: He is reputed to be rich.; He is said to be rich.
Apfel {m} :: apple
Komm sofort nach Hause! :: Come home at once!
"""

BROWN_TEXT = """

\tThe/at jury/nn said/vbd it/pps did/dod find/vb that/cs many/ap laws/nns ``/`` are/ber outmoded/jj ''/'' ./.


\tHe/pps asked/vbd :/: ``/`` Who's/wps+bez there/ex ?/. ''/''

"""

MAN_EN = r""".TH CAT 1 "2022" "GNU coreutils" "User Commands"
.SH NAME
cat \- concatenate files and print on the standard output
.SH DESCRIPTION
.\" a comment that must vanish
.PP
Concatenate FILE(s) to standard output.
.TP
\fB\-A\fR, \fB\-\-show\-all\fR
equivalent to \fB\-vET\fR
.SH AUTHOR
Written by Torbjorn Granlund and Richard M. Stallman.
"""
MAN_DE = r""".TH CAT 1 "2022" "GNU coreutils" "Dienstprogramme für Benutzer"
.SH BEZEICHNUNG
cat \- Dateien verketten und auf der Standardausgabe ausgeben
.SH BESCHREIBUNG
.PP
Verkettet DATEI(en) auf die Standardausgabe.
.TP
\fB\-A\fP, \fB\-\-show\-all\fP
gleichbedeutend mit \fB\-vET\fP
.SH AUTOR
Geschrieben von Torbjorn Granlund und Richard M. Stallman.
.SH ÜBERSETZUNG
Die deutsche Übersetzung wurde von K\(:ate Beispiel erstellt.
"""

