"""Diagnostic: MMGCN with its ID embeddings and user preferences frozen at their random start.

Takes the benchmark command's options and runs the command, training in this process (the
default trains each run in a fresh process, which would not have the patch). Not part of the
package.
"""

import sys

from recbole_slmrec.benchmark import runs
from recbole_slmrec.benchmark.cli import main
from recbole_slmrec.model.general_recommender import mmgcn

_reset = mmgcn.MMGCN.reset_parameters


def reset_frozen(self) -> None:
    _reset(self)
    self.id_embedding.requires_grad_(False)
    for graph in self.graphs.values():
        graph.preference.requires_grad_(False)


def in_process(spec: dict, checkpoint_dir: str, log_file: str) -> dict:
    return runs.train(spec, checkpoint_dir)


if __name__ == "__main__":
    mmgcn.MMGCN.reset_parameters = reset_frozen
    sys.exit(main(execute=in_process))
