"""A reproducible benchmark of recommenders, SLMRec and its ablation among them.

``python -m recbole_slmrec.benchmark`` (or ``slmrec_benchmark``) trains every model on the same
pre-split data under one protocol and budget, over several seeds, one run at a time, and writes
tables, histories and plots; see ``docs/BENCHMARK.md``.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark command line ``argv``; see :func:`recbole_slmrec.benchmark.cli.main`."""
    # imported here, not at module level: each run's spawned process imports this package, and
    # should not pay for the report's imports (matplotlib) before it trains
    from recbole_slmrec.benchmark.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
