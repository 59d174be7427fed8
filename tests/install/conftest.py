"""Tests of what a user installs: the package build, the man page and completions,
and the system-wide install (`make install`) exercised through mount(8).

Helpers come from tests/fuse (fuse_helpers, hang_helpers), put on the import path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuse"))
