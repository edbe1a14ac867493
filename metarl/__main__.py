"""``python -m metarl``: the same command as the ``metarl`` console script."""

import sys

from metarl.cli import main

if __name__ == "__main__":
    sys.exit(main())
