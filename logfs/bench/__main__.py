"""``python -m logfs.bench`` (the Makefile's ``make bench``, and ``logfs bench``) runs the
side-by-side benchmark harness (logfs.bench.harness). The core's own benchmark is
``python -m logfs.bench.core``."""

import sys

from logfs.bench.harness import main

sys.exit(main())
