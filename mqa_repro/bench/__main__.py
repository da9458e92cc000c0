"""``python -m mqa_repro.bench``: the same as ``mqa-repro bench``."""

from __future__ import annotations

import sys

from mqa_repro.bench.cli import main

sys.exit(main(sys.argv[1:]))
