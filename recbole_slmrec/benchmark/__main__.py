"""``python -m recbole_slmrec.benchmark``: the ``slmrec_benchmark`` command."""

import sys

from recbole_slmrec.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
