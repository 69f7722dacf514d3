"""``python -m recbole_slmrec``: the same as the ``run_recbole`` command."""

import sys

from recbole_slmrec.cli import main

sys.exit(main())
