"""Entry point of ``python -m atomic_data_tools``."""

from atomic_data_tools.cli import main

raise SystemExit(main())
