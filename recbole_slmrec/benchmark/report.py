"""The benchmark's report: tables, per-epoch histories, plots and the record of the setup.

Everything here is computed from the stored run records, so the table always agrees with
``runs/*.json`` and ``history.json``.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import sys
from typing import Any

import matplotlib
import numpy
import pandas
import recbole
import scipy
import torch
from matplotlib.figure import Figure

import recbole_slmrec
from recbole_slmrec.benchmark.runs import VALID_METRIC, write_json_atomic
from recbole_slmrec.benchmark.suite import Outcome

#: The test metrics of the table, as RecBole names them, and their column headers.
TABLE_METRICS = {
    "recall@10": "Recall@10",
    "recall@20": "Recall@20",
    "ndcg@10": "NDCG@10",
    "ndcg@20": "NDCG@20",
    "precision@20": "Precision@20",
}
CSV_COLUMNS = [
    "model",
    "seeds",
    "learning_rate",
    *(f"test_{metric}_{stat}" for metric in TABLE_METRICS for stat in ("mean", "std")),
    f"valid_{VALID_METRIC}_mean",
    f"valid_{VALID_METRIC}_std",
    "best_epoch_mean",
    "best_epoch_std",
    "train_s_per_epoch",
    "eval_s_per_eval",
    "peak_rss_mib",
    "wall_s",
]
PLOT_EPOCH = "valid_recall20_by_epoch.png"
PLOT_TIME = "valid_recall20_by_time.png"


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1); ``None`` where undefined."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarise(label: str, records: list[dict]) -> dict[str, Any]:
    """One table row from the records of a row's runs (one per seed)."""
    results = [record["result"] for record in records]
    summary: dict[str, Any] = {
        "model": label,
        "seeds": len(results),
        "learning_rate": results[0]["config"].get("learning_rate") if results else None,
    }
    for metric in TABLE_METRICS:
        mean, std = mean_std([result["test_result"][metric] for result in results])
        summary[f"test_{metric}_mean"], summary[f"test_{metric}_std"] = mean, std
    mean, std = mean_std([result["best_valid_score"] for result in results])
    summary[f"valid_{VALID_METRIC}_mean"], summary[f"valid_{VALID_METRIC}_std"] = mean, std
    epochs = [result["best_epoch"] for result in results if result["best_epoch"] is not None]
    summary["best_epoch_mean"], summary["best_epoch_std"] = mean_std(epochs)
    train_times, eval_times = [], []
    for result in results:
        trains = [epoch["train_time"] for epoch in result["history"]]
        evals = [epoch["valid_time"] for epoch in result["history"] if "valid_time" in epoch]
        if trains:
            train_times.append(statistics.fmean(trains))
        if evals:
            eval_times.append(statistics.fmean(evals))
    summary["train_s_per_epoch"] = mean_std(train_times)[0]
    summary["eval_s_per_eval"] = mean_std(eval_times)[0]
    summary["peak_rss_mib"] = max((result["peak_rss_mib"] for result in results), default=None)
    summary["wall_s"] = mean_std([result["wall_time_s"] for result in results])[0]
    return summary


def environment(outcome: Outcome) -> dict[str, Any]:
    """The package versions and the machine, with the devices and thread counts of the runs."""
    results = [record["result"] for record in outcome.records.values()]
    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "recbole": recbole.__version__,
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "pandas": pandas.__version__,
            "matplotlib": matplotlib.__version__,
            "recbole_slmrec": recbole_slmrec.__version__,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": sorted({result.get("torch_threads") for result in results} - {None}),
            "device": sorted({str(result.get("device")) for result in results}),
        },
    }


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _short(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def markdown_table(summaries: list[dict[str, Any]]) -> list[str]:
    """The results table, one line per row."""
    headers = [
        "Model",
        *TABLE_METRICS.values(),
        "Best epoch",
        "s/epoch",
        "s/eval",
        "Peak RSS (MiB)",
        "Wall (s)",
        "lr",
        "Seeds",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in summaries:
        cells = [
            f"`{row['model']}`",
            *(_fmt(row[f"test_{m}_mean"], row[f"test_{m}_std"], 4) for m in TABLE_METRICS),
            _fmt(row["best_epoch_mean"], row["best_epoch_std"], 1),
            _short(row["train_s_per_epoch"]),
            _short(row["eval_s_per_eval"]),
            "–" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.0f}",
            "–" if row["wall_s"] is None else f"{row['wall_s']:.1f}",
            "–" if row["learning_rate"] is None else f"{row['learning_rate']:g}",
            str(row["seeds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _notes(outcome: Outcome) -> list[str]:
    options = outcome.options
    configs = [record["result"]["config"] for record in outcome.records.values()]
    split = configs[0].get("benchmark_filename") if configs else None
    seeds = ", ".join(str(seed) for seed in options.seeds)
    notes = [
        f"Test figures: mean ± sample standard deviation (n − 1) over the seeds {seeds}, each "
        "run's figures taken at its best validation epoch (early stopping on validation "
        f"Recall@20, patience {options.stopping_step} evaluations, at most {options.epochs} "
        "epochs); `–` where undefined.",
        f"Protocol: dataset `{options.dataset}`, pre-split files {split} (one split for every "
        "model and seed); full ranking over all items, each user's training items excluded; "
        "the same budget, patience and overrides for every row; a seed sets RecBole's `seed`, "
        "with `reproducibility: True`.",
        "Best epoch: RecBole's epoch index (from 0). s/epoch: mean training time of an epoch. "
        "s/eval: mean time of one validation evaluation. Peak RSS: peak resident memory "
        "(`ru_maxrss`) of the run's own process, highest over the seeds. Wall: mean time of a "
        "run from data loading to the test evaluation, interpreter start-up excluded.",
        "Runs were trained one at a time, never in parallel, each in a fresh process.",
    ]
    if options.overrides:
        given = " ".join(f"`--{key}={value}`" for key, value in options.overrides.items())
        notes.append(f"Overrides applied to every row: {given}.")
    for model, files in options.model_configs.items():
        notes.append(f"Configuration files of {model}: {', '.join(files)}.")
    if options.lr_grid:
        grid = ", ".join(f"{lr:g}" for lr in options.lr_grid)
        notes.append(
            f"Learning rate: selected per model from {{{grid}}} on validation Recall@20 of "
            f"seed {options.seeds[0]} alone (see below); ablation variants use the rate "
            "selected for SLMRec."
        )
    if outcome.reference is not None:
        settings = ", ".join(f"{key}={value}" for key, value in outcome.reference.items())
        notes.append(
            f"Ablation: the `SLMRec` row is the reference ({settings}); each "
            "`SLMRec[key=value]` row changes only the settings it names."
        )
    notes.append(
        f"Plots `{PLOT_EPOCH}` and `{PLOT_TIME}`: validation Recall@20 of seed "
        f"{options.seeds[0]} (not averaged), against the epoch and against the cumulative "
        "training and validation time."
    )
    return notes


def _selection_lines(outcome: Outcome) -> list[str]:
    lines = [
        "## Learning-rate selection (validation only)",
        "",
        "| Model | lr | valid Recall@20 | best epoch | selected |",
        "|---|---|---|---|---|",
    ]
    for label, choice in outcome.selection.items():
        for entry in choice["grid"]:
            lines.append(
                f"| `{label}` | {entry['learning_rate']:g} | "
                f"{entry[f'valid_{VALID_METRIC}']:.4f} | {entry['best_epoch']} | "
                f"{'yes' if entry['learning_rate'] == choice['selected'] else ''} |"
            )
    return lines


def _environment_lines(outcome: Outcome, env: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    machine = env["machine"]
    return [
        f"command: {outcome.options.command}",
        f"interpreter: {sys.executable}",
        f"working directory: {os.getcwd()}",
        f"versions: {versions}",
        f"machine: {machine['platform']}, {machine['processor']}, {machine['cpu_count']} CPUs, "
        f"torch threads {machine['torch_threads']}, device {machine['device']}",
        f"wall time of this call: {outcome.elapsed_s:.1f} s; summed over its "
        f"{len(outcome.records)} runs, those finished by earlier calls included: "
        f"{_runs_wall(outcome):.1f} s",
    ]


def _runs_wall(outcome: Outcome) -> float:
    """The summed wall time of every run of the outcome, reused ones included."""
    return sum(record["result"]["wall_time_s"] for record in outcome.records.values())


def plot_curves(outcome: Outcome, by: str, path: str) -> None:
    """Validation Recall@20 of each row's first seed against ``epoch`` or ``time``."""
    seed = outcome.options.seeds[0]
    figure = Figure(figsize=(8, 5), dpi=120)
    axes = figure.add_subplot()
    for row in outcome.rows:
        records = [r for r in outcome.table_runs.get(row.label, []) if r["spec"]["seed"] == seed]
        if not records:
            continue
        xs, ys, clock = [], [], 0.0
        for epoch in records[0]["result"]["history"]:
            clock += epoch["train_time"] + epoch.get("valid_time", 0.0)
            if "valid_result" in epoch:
                xs.append(epoch["epoch"] if by == "epoch" else clock)
                ys.append(epoch["valid_result"][VALID_METRIC])
        axes.plot(xs, ys, marker=".", label=row.label)
    axes.set_xlabel("epoch" if by == "epoch" else "training + validation time (s)")
    axes.set_ylabel("validation Recall@20")
    axes.set_title(f"{outcome.options.dataset}: validation Recall@20, seed {seed}")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    figure.savefig(path, bbox_inches="tight")


def write_report(outcome: Outcome) -> dict[str, str]:
    """Write every report file into the output folder; returns their paths by kind."""
    out = outcome.options.output_dir
    paths = {
        "markdown": os.path.join(out, "results.md"),
        "csv": os.path.join(out, "results.csv"),
        "history": os.path.join(out, "history.json"),
        "command": os.path.join(out, "command.txt"),
        "plot_epoch": os.path.join(out, PLOT_EPOCH),
        "plot_time": os.path.join(out, PLOT_TIME),
    }
    summaries = [
        summarise(row.label, outcome.table_runs[row.label])
        for row in outcome.rows
        if outcome.table_runs.get(row.label)
    ]
    env = environment(outcome)

    with open(paths["csv"], "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for summary in summaries:
            writer.writerow({k: "" if v is None else str(v) for k, v in summary.items()})

    lines = [f"# Benchmark on `{outcome.options.dataset}`", "", *markdown_table(summaries), ""]
    lines += [f"- {note}" for note in _notes(outcome)]
    if outcome.selection:
        lines += ["", *_selection_lines(outcome)]
    if outcome.failures:
        lines += ["", "## Runs without a result", ""]
        lines += [f"- {failure}" for failure in outcome.failures]
    lines += ["", "## Command and environment", "", "```", *_environment_lines(outcome, env)]
    lines += ["```", ""]
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write("\n".join(lines))

    with open(paths["command"], "w", encoding="utf-8") as f:
        f.write("\n".join(_environment_lines(outcome, env)) + "\n")

    runs = [
        {
            "run_id": record["run_id"],
            "label": record["label"],
            "model": record["spec"]["model"],
            "seed": record["spec"]["seed"],
            "variant": record["spec"]["variant"],
            "used_for": outcome.used_for.get(rid, []),
            "best_epoch": record["result"]["best_epoch"],
            "best_valid_score": record["result"]["best_valid_score"],
            "history": record["result"]["history"],
        }
        for rid, record in outcome.records.items()
    ]
    history = {"dataset": outcome.options.dataset, "valid_metric": VALID_METRIC, "runs": runs}
    write_json_atomic(paths["history"], history)
    selection_path = os.path.join(out, "lr_selection.json")
    if outcome.selection:
        write_json_atomic(selection_path, outcome.selection)
        paths["selection"] = selection_path
    elif os.path.exists(selection_path):
        os.remove(selection_path)  # left by an earlier benchmark in this folder
    plot_curves(outcome, "epoch", paths["plot_epoch"])
    plot_curves(outcome, "time", paths["plot_time"])
    return paths
