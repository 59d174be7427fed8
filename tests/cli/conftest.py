"""The CLI's contract with people: one-line refusals, no tracebacks, no Python values.

These tests run the real `logfs` command in subprocesses. Helpers come from
tests/fuse (fuse_helpers: LOGFS, run, mounts), which is put on the import path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuse"))
