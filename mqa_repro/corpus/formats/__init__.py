"""Parsers of the source formats, one module each.

Each is a pure function from one file's text (or bytes) to (English, German) pairs or English lines:
nothing here downloads, opens packages or cleans across files, so every parser is tested on a small
sample written in the test. Which packages and which files inside them feed a parser is
:mod:`mqa_repro.corpus.sources`' business; dropping bad pairs is :mod:`mqa_repro.corpus.text`'s.
"""
