"""The ``run_recbole`` command: RecBole's runner, for plugin and RecBole models alike."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import yaml

from recbole_slmrec.compat import UnsupportedEnvironmentError
from recbole_slmrec.data.features import FeatureError
from recbole_slmrec.model.abstract import ModelConfigError
from recbole_slmrec.quick_start import DatasetNotFoundError, UnsafeCacheError, run
from recbole_slmrec.utils import ModelNotFoundError

USER_ERRORS = (
    DatasetNotFoundError,
    ModelNotFoundError,
    FeatureError,
    UnsupportedEnvironmentError,
    UnsafeCacheError,
    ModelConfigError,
    yaml.YAMLError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description=(
            "Train and evaluate a recommender with RecBole. Models are looked up in "
            "recbole_slmrec first (SLMRec, ...), then in RecBole (LightGCN, BPR, ...). Any "
            "further --key=value overrides that configuration key, as in RecBole."
        ),
        epilog="Example: run_recbole --model=SLMRec --dataset=ml-100k-mm --epochs=20",
    )
    parser.add_argument("--model", "-m", default="SLMRec", help="model name (default SLMRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k-mm", help="dataset name")
    parser.add_argument(
        "--config_files", default=None, help="space-separated YAML files, applied in order"
    )
    group = parser.add_argument_group(
        "several processes", "torch.distributed: NCCL with one GPU per process, else gloo on CPUs"
    )
    group.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    group.add_argument(
        "--world_size", type=int, default=-1, help="processes on all machines (default nproc)"
    )
    group.add_argument("--ip", default="127.0.0.1", help="address of the machine of rank 0")
    group.add_argument(
        "--port", type=int, default=None, help="port of rank 0 (default: a free one, one machine)"
    )
    group.add_argument(
        "--group_offset", type=int, default=0, help="global rank of this machine's first process"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args, overrides = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    config_files = args.config_files.split() if args.config_files else None
    for path in config_files or []:
        if not os.path.isfile(path):
            parser.error(f"config file {path} does not exist")
    try:
        run(
            args.model,
            args.dataset,
            config_file_list=config_files,
            cmd_args=overrides,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    except USER_ERRORS as error:
        parser.exit(2, f"run_recbole: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
