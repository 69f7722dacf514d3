"""A smoke run of the performance benchmark on a tiny fraction: every figure and ratio is there.

No timing is asserted: the figures of a run this small, on a shared machine, mean nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recbole_slmrec.perf import bench

TINY = [
    "--preset=tiktok",
    "--fraction=0.002",
    "--memory-fractions=0.001",
    "--batch-size=64",
    "--embedding-size=8",
    "--n-layers=2",
    "--steps=1",
    "--warmup=1",
    "--repeats=1",
    "--eval-chunks=600,1200",
    "--threads=1",
    "--in-process",
]


def test_report_has_every_figure_and_ratio(tmp_path: Path, capsys):
    argv = [*TINY, f"--work={tmp_path / 'work'}", f"--out={tmp_path / 'out'}"]
    assert bench.main(argv) == 0

    report = json.loads((tmp_path / "out" / "perf-tiktok-0.002-cpu.json").read_text())
    machine, figures, ratios = report["machine"], report["figures"], report["ratios"]
    assert {"cpu", "cores", "torch_threads", "device", "torch", "recbole"} <= set(machine)
    assert machine["device"] == "cpu" and machine["torch_threads"] == 1
    assert set(figures["convert"]) == {"0.001", "0.002"}
    assert {"time_s", "peak_rss_mib"} <= set(figures["convert"]["0.002"])
    assert {"time_s", "peak_rss_mib", "aligned_feature_mib"} <= set(figures["load"])
    assert set(figures["train"]) == {"SLMRec-FAC", "SLMRec-FD", "LightGCN"}
    for train in figures["train"].values():
        assert {"step_s", "epoch_s", "steps_per_epoch", "peak_rss_mib", "profile"} <= set(train)
    assert set(figures["train"]["SLMRec-FAC"]["phases"]) == {
        "graph propagation (user and ID embeddings, width 2d)",
        "modality views at the batch's rows (precomputed features)",
    }
    assert {
        "feature projection (all items), 2 dropout copies",
        "graph propagation (all views, width views x d), 2 dropout copies",
    } <= set(figures["train"]["SLMRec-FD"]["phases"])
    propagation = figures["propagation"]
    assert propagation["views"] == 4 and propagation["max_abs_difference"] < 1e-4
    assert {"fused", "per_view", "per_view_coo"} <= set(propagation)
    assert [row["chunk"] for row in figures["eval"]["by_chunk"]] == [600, 1200]
    assert {"bytes_per_score", "slope"} <= set(figures["eval"]["fit"])
    assert len(figures["train_memory"]["points"]) == 4
    assert set(figures["train_memory"]["fits"]["peak_rss_mib"]) == {"SLMRec-FAC", "SLMRec-FD"}
    assert set(ratios) == {
        "SLMRec-FAC_vs_views_x_LightGCN",
        "SLMRec-FD_vs_views_x_LightGCN",
        "fused_propagation_speedup",
        "eval_peak_vs_dense_scores",
        "train_memory_full_size_gib",
    }
    for ratio in ratios.values():
        assert {"value", "target", "met", "definition"} <= set(ratio)
    for diagnosis in report["diagnosis"]:
        assert diagnosis["what_it_would_take"] and diagnosis["profile"]

    markdown = (tmp_path / "out" / "perf-tiktok-0.002-cpu.md").read_text()
    assert machine["cpu"] in markdown and "torch threads 1" in markdown
    assert markdown in capsys.readouterr().out
    for label in ("converter", "dataset load", "train step SLMRec-FAC", "propagation fused"):
        assert label in markdown


def test_a_child_reports_its_own_peak_memory(tmp_path: Path):
    usage = bench.run_child(
        [sys.executable, "-c", "block = bytearray(64 * 2**20); block[::4096] = b'x' * 16384"],
        tmp_path,
        tmp_path / "child.log",
    )
    assert usage["peak_rss_mib"] >= 64 and usage["time_s"] > 0


def test_a_measured_step_runs_from_its_json_spec(tmp_path: Path):
    result = tmp_path / "baseline.json"
    spec = {"stage": "baseline", "threads": 1, "work": str(tmp_path), "result_file": str(result)}
    assert bench.main(["--stage", json.dumps(spec)]) == 0
    assert json.loads(result.read_text())["rss_mib"] > 0
