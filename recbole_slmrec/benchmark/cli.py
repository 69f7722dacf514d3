"""The ``slmrec_benchmark`` command (also ``python -m recbole_slmrec.benchmark``)."""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from recbole_slmrec.benchmark.report import write_report
from recbole_slmrec.benchmark.runs import DERIVED_KEYS, PROTOCOL, Executor, train_in_subprocess
from recbole_slmrec.benchmark.suite import (
    ABLATION_GROUPS,
    ABLATION_MODEL,
    Benchmark,
    BenchmarkError,
    Options,
)
from recbole_slmrec.cli import USER_ERRORS
from recbole_slmrec.utils import plugin_model_names

BASELINES = ["LightGCN", "BPR"]
SEED_BASE = 2020
PROG = "slmrec_benchmark"


def default_models() -> list[str]:
    """SLMRec, the plugin's other models, then RecBole's LightGCN and BPR."""
    plugin = [ABLATION_MODEL] + [name for name in plugin_model_names() if name != ABLATION_MODEL]
    return plugin + [name for name in BASELINES if name not in plugin]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser; ``--key=value`` arguments it does not know are overrides."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description=(
            "Compare recommenders on one dataset under one protocol: the same pre-split data, "
            "full ranking with training items excluded, early stopping on validation "
            "Recall@20, test figures at the best validation epoch, the same budget and "
            "several seeds for every model. Runs train ONE AT A TIME, never in parallel (on a "
            "small machine parallel torch processes slow each other down many times), each in "
            "a fresh process. Finished runs are kept in OUTPUT_DIR/runs/ and skipped when the "
            "command is run again. Any further --key=value sets that RecBole configuration key "
            "for every model alike."
        ),
        epilog=(
            "Example: slmrec_benchmark --dataset=ml-100k-mm --models=SLMRec,LightGCN,BPR "
            "--n_seeds=3 --epochs=200 --stopping_step=30 --lr_grid=1e-3,1e-2 --ablation"
        ),
    )
    parser.add_argument("--dataset", default="ml-100k-mm", help="dataset name (ml-100k-mm)")
    parser.add_argument(
        "--data_path", default="dataset/", help="folder that holds the dataset folder (dataset/)"
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated model names, in table order (the plugin's models, LightGCN, BPR)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--n_seeds", type=int, default=3, help=f"seeds {SEED_BASE}, {SEED_BASE + 1}, ... (3)"
    )
    seeds.add_argument("--seeds", default=None, help="comma-separated RecBole seeds instead")
    parser.add_argument("--epochs", type=int, default=200, help="epoch budget of a run (200)")
    parser.add_argument(
        "--stopping_step",
        type=int,
        default=30,
        help="early-stopping patience: evaluations without improvement (30)",
    )
    parser.add_argument(
        "--output_dir", default=None, help="output folder (benchmark_results/DATASET)"
    )
    parser.add_argument(
        "--model_config",
        action="append",
        default=[],
        metavar="MODEL=PATH",
        help="a YAML configuration file for one model; may be repeated",
    )
    parser.add_argument(
        "--lr_grid",
        default=None,
        help=(
            "comma-separated learning rates: each model runs each on the first seed, the best "
            "validation Recall@20 wins, then all seeds run with it"
        ),
    )
    parser.add_argument(
        "--ablation",
        nargs="?",
        const=",".join(ABLATION_GROUPS),
        default="",
        metavar="GROUPS",
        help=(
            "add the SLMRec ablation, one row per variant; GROUPS is a comma-separated subset "
            f"of {', '.join(ABLATION_GROUPS)} (all when omitted)"
        ),
    )
    return parser


def parse_value(text: str) -> Any:
    """A configuration value from the command line: a Python literal, a boolean or a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)


def _protected_hint(key: str, lr_grid: bool) -> str | None:
    if key in ("seed", "reproducibility"):
        return "the benchmark sets it from --seeds / --n_seeds"
    if key in DERIVED_KEYS:
        return f"use --{key}" if key != "checkpoint_dir" else "checkpoints go to OUTPUT_DIR"
    if key in PROTOCOL:
        return "the benchmark's protocol fixes it"
    if key in ("model", "dataset"):
        return "use --models / --dataset"
    if key == "learning_rate" and lr_grid:
        return "--lr_grid selects it"
    return None


def parse_overrides(parser: argparse.ArgumentParser, args: list[str], lr_grid: bool) -> dict:
    """The ``--key=value`` overrides, typed; refuses keys that the benchmark sets itself."""
    overrides: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognized argument {arg!r}: configuration overrides are --key=value")
        key, text = arg[2:].split("=", 1)
        hint = _protected_hint(key, lr_grid)
        if hint:
            parser.error(f"--{key} cannot be overridden: {hint}")
        value = parse_value(text)
        try:
            overrides[key] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            parser.error(f"--{key}={text}: the value must be a number, string, list or dict")
    return overrides


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def make_options(parser: argparse.ArgumentParser, argv: list[str]) -> Options:
    """Parse ``argv`` into the benchmark's options, or exit with a usage error."""
    args, rest = parser.parse_known_args(argv)
    models = list(dict.fromkeys(_split(args.models))) if args.models else default_models()
    if not models:
        parser.error("--models names no model")
    try:
        seeds = [int(s) for s in _split(args.seeds)] if args.seeds else None
        lr_grid = [float(lr) for lr in _split(args.lr_grid)] if args.lr_grid else []
    except ValueError as error:
        parser.error(f"--seeds takes integers and --lr_grid numbers: {error}")
    if seeds is None:
        if args.n_seeds < 1:
            parser.error("--n_seeds must be at least 1")
        seeds = [SEED_BASE + k for k in range(args.n_seeds)]
    if not seeds or len(set(seeds)) != len(seeds):
        parser.error("--seeds must name distinct seeds")
    if any(lr <= 0 for lr in lr_grid):
        parser.error("--lr_grid takes positive learning rates")
    if args.epochs < 1 or args.stopping_step < 1:
        parser.error("--epochs and --stopping_step must be at least 1")
    ablation = tuple(dict.fromkeys(g.strip() for g in args.ablation.split(",") if g.strip()))
    unknown = [group for group in ablation if group not in ABLATION_GROUPS]
    if unknown:
        parser.error(
            f"--ablation {','.join(unknown)}: expected groups among {', '.join(ABLATION_GROUPS)}"
        )
    configured = set(models) | ({ABLATION_MODEL} if ablation else set())
    model_configs: dict[str, list[str]] = {}
    for item in args.model_config:
        model, _, path = item.partition("=")
        if model not in configured or not path:
            parser.error(f"--model_config {item!r}: expected MODEL=PATH for a benchmarked model")
        if not os.path.isfile(path):
            parser.error(f"--model_config {item!r}: no file {path}")
        model_configs.setdefault(model, []).append(os.path.abspath(path))
    return Options(
        dataset=args.dataset,
        data_path=os.path.abspath(args.data_path),
        models=models,
        seeds=seeds,
        epochs=args.epochs,
        stopping_step=args.stopping_step,
        output_dir=os.path.abspath(
            args.output_dir or os.path.join("benchmark_results", args.dataset)
        ),
        overrides=parse_overrides(parser, rest, bool(lr_grid)),
        model_configs=model_configs,
        lr_grid=list(dict.fromkeys(lr_grid)),
        ablation=ablation,
        command=shlex.join(["python", "-m", "recbole_slmrec.benchmark", *argv]),
    )


def main(argv: Sequence[str] | None = None, *, execute: Executor = train_in_subprocess) -> int:
    """Run the benchmark command line ``argv`` (default ``sys.argv[1:]``).

    ``execute`` trains one run (see :class:`Benchmark`); the default trains each in a fresh
    process. A diagnostic script that patches a model passes one that trains in its own
    process, so that the patch applies.

    Returns:
        0 when every run finished, 1 when some produced no result; 2 (through
        ``SystemExit``) for a usage or dataset error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    options = make_options(parser, argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s  %(message)s",
            datefmt="%d %b %H:%M:%S",
        )
    try:
        outcome = Benchmark(options, execute).run()
    except (*USER_ERRORS, BenchmarkError) as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    paths = write_report(outcome)
    logging.getLogger().info(f"Benchmark written: {', '.join(paths.values())}")
    with open(paths["markdown"], encoding="utf-8") as f:
        print(f.read())
    return 1 if outcome.failures else 0
