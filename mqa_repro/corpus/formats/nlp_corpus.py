"""The npm package nlp-corpus: English sentences as JSON lists, one ``builds/doc-N.json`` per document."""

from __future__ import annotations

import json

from mqa_repro.corpus.text import normalize_text

def extract_nlp_corpus(json_text: str) -> list[str]:
  """Sentences of one `nlp-corpus` builds/doc-N.json file (a JSON list of strings)."""
  data = json.loads(json_text)
  if not isinstance(data, list):
    raise ValueError('nlp-corpus document is not a JSON list')
  return [normalize_text(s) for item in data if isinstance(item, str) for s in item.splitlines()]
