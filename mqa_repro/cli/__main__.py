"""``python -m mqa_repro.cli <command>``: the same as ``mqa-repro <command>``."""

from __future__ import annotations

import sys

from mqa_repro.cli import main

sys.exit(main())
