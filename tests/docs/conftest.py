"""Tests that keep README.md and docs/ true: links, the reference tables, the tour.

Helpers come from tests/fuse (fuse_helpers), put on the import path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuse"))
