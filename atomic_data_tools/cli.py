"""Command line of the converters: ``python -m atomic_data_tools`` or ``atomic_data_tools``."""

from __future__ import annotations

import argparse
import logging
import re
import textwrap
from pathlib import Path

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts import REGISTRY
from atomic_data_tools.pipeline import convert
from atomic_data_tools.report import format_report
from atomic_data_tools.source import ConvertOptions

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
"""The accepted dataset names: they become file names."""


def _dataset_name(text: str) -> str:
    """Argparse type of ``--dataset``: a plain file-name stem."""
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a dataset name: use letters, digits, '_', '-' and '.'"
        )
    return text


def _layouts_epilog() -> str:
    """Describe every registered layout for ``--help``."""
    parts = ["layouts:"]
    for name, cls in REGISTRY.items():
        parts.append(f"  {name}")
        parts += [textwrap.indent(line, "      ") for line in cls.summary.splitlines()]
    parts += [
        "",
        "The dataset folder (default dataset/NAME) then works with",
        "  run_recbole --model=SLMRec --dataset=NAME --data_path=<its parent folder>",
        "and holds NAME.stats.json, the report printed at the end.",
    ]
    return "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="atomic_data_tools",
        description="Convert a public Tiktok, Kwai, Movielens or Amazon release into a RecBole "
        "dataset folder of atomic files (docs/DATA_FORMAT.md).",
        epilog=_layouts_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, nargs="?", help="the release folder")
    parser.add_argument(
        "--input", dest="input_option", type=Path, help="the release folder (same as INPUT)"
    )
    parser.add_argument(
        "--dataset", "--name", required=True, type=_dataset_name, help="the dataset name NAME"
    )
    parser.add_argument(
        "--layout",
        choices=["auto", *REGISTRY],
        default="auto",
        help="the release layout; auto (default) detects it from the files present",
    )
    parser.add_argument(
        "--output", type=Path, help="the dataset folder to write (default: dataset/NAME)"
    )
    parser.add_argument(
        "--prefix",
        help="slmrec and mmrec: the <name> of the release files (default: the dataset name)",
    )
    parser.add_argument(
        "--val-ratio",
        type=float,
        default=0.1,
        help="share of each user's train interactions carved out as validation when the "
        "release has none (default: 0.1)",
    )
    parser.add_argument(
        "--seed", type=int, default=2020, help="seed of the validation carving (default: 2020)"
    )
    parser.add_argument(
        "--item-numbering",
        choices=["auto", "offset", "zero"],
        default="auto",
        help="mmgcn: items numbered after the users (offset) or from 0 (zero); default auto",
    )
    parser.add_argument(
        "--num-users",
        type=int,
        help="mmgcn: the number of users, i.e. the item id offset (default: largest user id + 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one conversion and print its statistics report.

    Args:
        argv: the arguments, without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success; 1 when the release is refused or a file cannot be read or written (the
        message is logged, without a traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.input is None) == (args.input_option is None):
        parser.error("give the release folder once, as INPUT or as --input")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    options = ConvertOptions(
        dataset=args.dataset,
        prefix=args.prefix,
        val_ratio=args.val_ratio,
        seed=args.seed,
        item_numbering=args.item_numbering,
        num_users=args.num_users,
    )
    try:
        stats = convert(
            args.input or args.input_option, options, layout=args.layout, output_dir=args.output
        )
    except (ConversionError, OSError) as err:
        logger.error("%s", err)
        return 1
    print(format_report(stats))
    return 0
