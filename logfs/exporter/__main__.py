"""``python -m logfs.exporter DATA [--bind ADDR] [--port N] ...``"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m logfs.exporter"))
