"""The command line: help, default output folder, report output and exit codes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atomic_data_tools.cli import main
from tests.atomic_fixtures import make_mmgcn, make_mmssl, make_slmrec

REPO = Path(__file__).resolve().parents[1]


def test_help_explains_every_layout(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for expected in (
        "mmgcn",
        "val_full.npy (or val.npy)",
        "feat_t.pt may be a 2 x N",
        "slmrec",
        "<name>_textual_feat.pt",
        "mmssl",
        "trnMat.pkl",
        "mmrec",
        "x_label",
        "--val-ratio",
        "--seed",
        "--prefix",
        "dataset/NAME",
    ):
        assert expected in text


def test_default_output_and_printed_report(tmp_path, monkeypatch, capsys):
    source = make_slmrec(tmp_path / "raw", prefix="kwai", dataset="kwai")
    monkeypatch.chdir(tmp_path)
    assert main([str(source), "--dataset", "kwai", "--seed", "3", "--val-ratio", "0.5"]) == 0

    out = tmp_path / "dataset" / "kwai"
    stats = json.loads((out / "kwai.stats.json").read_text(encoding="utf-8"))
    assert stats["validation"]["seed"] == 3 and stats["validation"]["ratio"] == 0.5
    printed = capsys.readouterr().out
    assert printed.startswith("dataset kwai (layout slmrec): 5 users, 6 items, 16 interactions")
    assert "modality visual: dense, width 4" in printed


def test_prefix_and_explicit_layout(tmp_path, capsys):
    source = make_slmrec(tmp_path / "raw", prefix="tiktok")
    out = tmp_path / "out"
    argv = [str(source), "--dataset", "tt", "--prefix", "tiktok", "--layout", "slmrec"]
    assert main(argv + ["--output", str(out), "-q"]) == 0
    assert (out / "tt.item").exists()
    assert "layout slmrec" in capsys.readouterr().out


def test_input_and_name_options(tmp_path, capsys):
    source = make_mmssl(tmp_path / "raw")
    out = tmp_path / "data" / "tiny"
    assert main(["--input", str(source), "--name", "tiny", "--output", str(out)]) == 0
    assert (out / "tiny.train.inter").exists()
    with pytest.raises(SystemExit) as caught:
        main([str(source), "--input", str(source), "--name", "tiny"])
    assert caught.value.code == 2
    assert "give the release folder once" in capsys.readouterr().err


def test_conversion_error_exits_nonzero_with_the_message(tmp_path, caplog, capsys):
    source = make_mmgcn(tmp_path / "raw")
    (source / "val.npy").write_bytes((source / "val_full.npy").read_bytes())
    with caplog.at_level(logging.ERROR):
        code = main([str(source), "--dataset", "tiny", "--output", str(tmp_path / "out")])
    assert code == 1
    assert "got both val_full.npy and val.npy" in caplog.text
    assert capsys.readouterr().out == ""


def test_invalid_dataset_name_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path), "--dataset", "../up"])
    assert caught.value.code == 2
    assert "is not a dataset name" in capsys.readouterr().err


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    source = make_mmssl(tmp_path / "raw")
    (source / "valMat.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "atomic_data_tools", str(source), "--dataset", "tiny"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "valMat.pkl: pickle global: got os.system" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dataset").exists()
