"""``python -m logfs.bench`` (the Makefile's ``make bench``) runs the core benchmark."""

import sys

from logfs.bench.core import main

sys.exit(main())
