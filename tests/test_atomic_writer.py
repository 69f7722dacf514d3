"""Conversions are deterministic, and an interrupted one leaves no partial or temporary file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atomic_data_tools.writer as writer
from atomic_data_tools import ConvertOptions, convert
from atomic_data_tools.writer import atomic_open, format_floats
from tests.atomic_fixtures import make_mmgcn, make_mmrec, make_mmssl, make_slmrec

BUILDERS = {
    "mmgcn": lambda folder: make_mmgcn(folder),
    "slmrec": lambda folder: make_slmrec(folder, prefix="tiny"),
    "mmssl": lambda folder: make_mmssl(folder, modalities=("visual", "acoustic", "textual")),
    "mmrec": lambda folder: make_mmrec(folder, prefix="tiny"),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder (hidden ones included) by name."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def run(source: Path, out: Path) -> None:
    """Convert ``source`` into ``out`` as dataset ``tiny``."""
    convert(source, ConvertOptions(dataset="tiny"), "auto", out)


@pytest.mark.parametrize("layout", sorted(BUILDERS))
def test_converting_twice_gives_identical_bytes(tmp_path, layout):
    source = BUILDERS[layout](tmp_path / "src")
    run(source, tmp_path / "first")
    first = snapshot(tmp_path / "first")
    run(source, tmp_path / "first")
    run(source, tmp_path / "second")

    assert snapshot(tmp_path / "first") == first == snapshot(tmp_path / "second")
    assert "tiny.yaml" in first and "tiny.stats.json" in first
    assert not [name for name in first if name.startswith(".")]


class Interrupted(Exception):
    """The simulated interruption."""


def test_interrupted_inter_file_leaves_nothing_behind(tmp_path, monkeypatch):
    source = make_mmgcn(tmp_path / "src")
    out = tmp_path / "out"

    def failing_chunks(split, value_columns):
        yield ["0\t1"]
        raise Interrupted

    monkeypatch.setattr(writer, "_inter_chunks", failing_chunks)
    with pytest.raises(Interrupted):
        run(source, out)
    assert list(out.iterdir()) == []


def test_interrupted_rewrite_keeps_the_previous_files(tmp_path, monkeypatch):
    source = make_mmssl(tmp_path / "src")
    out = tmp_path / "out"
    run(source, out)
    before = snapshot(out)

    def failing_save(stream, array, allow_pickle):
        stream.write(b"\x93NUMPY partial")
        raise Interrupted

    monkeypatch.setattr(writer.np, "save", failing_save)
    with pytest.raises(Interrupted):
        run(source, out)
    assert snapshot(out) == before


def test_atomic_open_cleans_up_on_keyboard_interrupt(tmp_path):
    target = tmp_path / "file.txt"
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as stream:
        stream.write(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []

    with atomic_open(target) as stream:
        stream.write(b"whole\n")
    assert target.read_bytes() == b"whole\n"
    assert list(tmp_path.iterdir()) == [target]


def test_stale_files_of_an_earlier_conversion_are_removed(tmp_path):
    out = tmp_path / "out"
    run(make_mmgcn(tmp_path / "pairs"), out)
    assert (out / "tiny.item").exists() and not (out / "tiny.textual.npy").exists()

    run(make_mmgcn(tmp_path / "dense", text="dense"), out)
    assert not (out / "tiny.item").exists() and (out / "tiny.textual.npy").exists()
    (out / "unrelated.txt").write_text("kept", encoding="utf-8")
    run(make_mmgcn(tmp_path / "kwai", dataset="kwai"), out)
    assert sorted(path.name for path in out.iterdir()) == [
        "tiny.stats.json",
        "tiny.test.inter",
        "tiny.train.inter",
        "tiny.valid.inter",
        "tiny.visual.ids",
        "tiny.visual.npy",
        "tiny.yaml",
        "unrelated.txt",
    ]


def test_format_floats():
    assert format_floats(np.array([5.0, 1.0e9, -2.0])) == ["5", "1000000000", "-2"]
    assert format_floats(np.array([4.5, 1.0])) == ["4.5", "1.0"]
