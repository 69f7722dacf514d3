"""The converters on malformed releases: byte order marks, huge ids, empty splits, odd pickles."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from atomic_data_tools import ConversionError, ConvertOptions, convert
from tests.atomic_fixtures import (
    MMREC_HEADER,
    TRAIN,
    coo,
    make_mmgcn,
    make_mmrec,
    make_mmssl,
    make_slmrec,
    mmrec_lines,
)


def refused(source, tmp_path, **options: object) -> str:
    """Convert ``source``, expect a refusal, check nothing was written, return the message."""
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as caught:
        convert(source, ConvertOptions(dataset="tiny", **options), "auto", out)
    assert not out.exists()
    return str(caught.value)


def converted(source, tmp_path, **options: object):
    out = tmp_path / "out"
    stats = convert(source, ConvertOptions(dataset="tiny", **options), "auto", out)
    return out, stats


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    plain, _ = converted(make_slmrec(tmp_path / "plain"), tmp_path / "a")
    source = make_slmrec(tmp_path / "bom")
    for name in ("tiny.train", "tiny.test"):
        path = source / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    out, _ = converted(source, tmp_path / "b")
    for name in ("tiny.train.inter", "tiny.valid.inter", "tiny.test.inter"):
        assert (out / name).read_bytes() == (plain / name).read_bytes()


def test_a_byte_order_mark_before_the_mmrec_header(tmp_path):
    source = make_mmrec(tmp_path / "src", prefix="tiny")
    path = source / "tiny.inter"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    out, stats = converted(source, tmp_path)
    assert (out / "tiny.train.inter").read_text().startswith("user_id:token\titem_id:token")


def test_mmrec_header_naming_a_column_twice(tmp_path):
    source = make_mmrec(tmp_path / "src", prefix="tiny")
    path = source / "tiny.inter"
    header = MMREC_HEADER.replace("rating", "userID")
    path.write_text("\n".join([header] + mmrec_lines()) + "\n", encoding="utf-8")
    assert refused(source, tmp_path) == (
        f"{path}: line 1 (header): got the column name userID twice; expected each column name once"
    )


@pytest.mark.parametrize("value", [10**30, -(10**30), 2**31])
def test_mmgcn_object_row_with_an_id_beyond_int64_or_the_id_range(tmp_path, value):
    # 10**30 raised a bare OverflowError from numpy before
    source = make_mmgcn(tmp_path / "src")
    rows = np.empty(1, dtype=object)
    rows[0] = [0, value]
    np.save(source / "val_full.npy", rows, allow_pickle=True)
    assert refused(source, tmp_path) == (
        f"{source / 'val_full.npy'}: row 0: got item id {value}; expected 0 <= id <= 2147483647"
    )


def test_an_empty_train_split_is_refused(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    np.save(source / "train.npy", np.zeros((0, 2), dtype=np.int64))
    assert refused(source, tmp_path) == (
        f"{source / 'train.npy'}: got no train interactions; "
        "expected at least one interaction in the train split"
    )


def test_an_mmssl_split_of_explicit_zeros_only_is_empty(tmp_path):
    source = make_mmssl(tmp_path / "src")
    matrix = coo(TRAIN)
    matrix.data[:] = 0
    with open(source / "tstMat.pkl", "wb") as stream:
        pickle.dump(matrix, stream)
    assert "got no test interactions" in refused(source, tmp_path)


def test_an_empty_validation_split_is_carved_from_train(tmp_path, caplog):
    source = make_mmgcn(tmp_path / "src")
    rows = np.empty(4, dtype=object)
    for user in range(4):
        rows[user] = [user]
    np.save(source / "val_full.npy", rows, allow_pickle=True)
    out, stats = converted(source, tmp_path)
    assert "the validation split is empty; carving one" in caplog.text
    assert stats["splits"]["valid"]["interactions"] > 0
    assert len((out / "tiny.valid.inter").read_text().splitlines()) > 1


def test_no_validation_can_be_carved_from_single_interaction_users(tmp_path):
    source = make_slmrec(tmp_path / "src")
    (source / "tiny.train").write_text("0,0\n1,1\n2,2\n", encoding="utf-8")
    (source / "tiny.test").write_text("0,3\n", encoding="utf-8")
    message = refused(source, tmp_path)
    assert message.startswith(f"{source / 'tiny.train'}: got no user with two or more train")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_mmssl_non_finite_interaction_value(tmp_path, bad):
    source = make_mmssl(tmp_path / "src")
    matrix = coo(TRAIN)
    matrix.data[2] = bad
    with open(source / "trnMat.pkl", "wb") as stream:
        pickle.dump(matrix, stream)
    assert refused(source, tmp_path) == (
        f"{source / 'trnMat.pkl'}: entry 2: got value {bad}; expected a finite interaction value"
    )


def test_mmssl_index_beyond_the_id_range_despite_a_large_shape(tmp_path):
    # ids above 2**31 - 1 would collide in the (user, item) keys of the split checks
    source = make_mmssl(tmp_path / "src")
    for name, pairs in (("trnMat.pkl", TRAIN), ("valMat.pkl", [(0, 6)]), ("tstMat.pkl", [(1, 6)])):
        matrix = coo(pairs, shape=(4, 2**31 + 5))
        if name == "trnMat.pkl":
            matrix.col = matrix.col.astype(np.int64)
            matrix.col[0] = 2**31
        with open(source / name, "wb") as stream:
            pickle.dump(matrix, stream)
    for name in ("image_feat.npy", "audio_feat.npy"):
        os.remove(source / name)
    assert refused(source, tmp_path) == (
        f"{source / 'trnMat.pkl'}: entry 0: got col index 2147483648; "
        "expected 0 <= index <= 2147483647"
    )


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_pickled_object_inside_a_tensor_file_gives_one_line(tmp_path):
    source = make_slmrec(tmp_path / "src")
    torch.save({"features": _System()}, source / "tiny_visual_feat.pt")
    message = refused(source, tmp_path)
    assert "\n" not in message
    assert "weights_only=False" not in message
    assert message.startswith(
        f"{source / 'tiny_visual_feat.pt'}: got an unreadable file (it holds pickled objects "
        "besides tensors, refused unread: "
    )
    assert "system" in message


def test_an_empty_tensor_file(tmp_path):
    source = make_slmrec(tmp_path / "src")
    (source / "tiny_visual_feat.pt").write_bytes(b"")
    assert refused(source, tmp_path) == (
        f"{source / 'tiny_visual_feat.pt'}: got an empty file; expected a saved tensor"
    )


def test_sparse_tensors_are_densified(tmp_path):
    plain, _ = converted(make_slmrec(tmp_path / "plain"), tmp_path / "a")
    source = make_slmrec(tmp_path / "sparse")
    path = source / "tiny_visual_feat.pt"
    torch.save(torch.load(path).to_sparse(), path)
    out, _ = converted(source, tmp_path / "b")
    assert (out / "tiny.visual.npy").read_bytes() == (plain / "tiny.visual.npy").read_bytes()


@pytest.mark.parametrize(
    "tensor, got",
    [
        (
            lambda: torch.empty(7, 4, device="meta"),
            "a data-less meta tensor of dtype torch.float32",
        ),
        (
            lambda: torch.quantize_per_tensor(torch.zeros(7, 4), 0.1, 0, torch.quint8),
            "a quantized tensor of dtype torch.quint8",
        ),
    ],
)
def test_tensors_without_plain_data(tmp_path, tensor, got):
    # both raised a bare TypeError from Tensor.numpy() before
    source = make_slmrec(tmp_path / "src")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensors
        torch.save(tensor(), source / "tiny_visual_feat.pt")
    assert refused(source, tmp_path) == (
        f"{source / 'tiny_visual_feat.pt'}: got {got}; expected a float, integer or bool tensor"
    )


def test_a_numpy_file_named_like_a_tensor(tmp_path):
    source = make_slmrec(tmp_path / "src")
    path = source / "tiny_visual_feat.pt"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros((7, 4), dtype=np.float32))
    assert refused(source, tmp_path) == (
        f"{path}: got a numpy .npy file under a .pt name; expected a tensor saved by torch.save"
    )


def test_a_truncated_tensor_file_gives_a_short_line(tmp_path):
    source = make_slmrec(tmp_path / "src")
    path = source / "tiny_visual_feat.pt"
    path.write_bytes(path.read_bytes()[:200])
    message = refused(source, tmp_path)
    assert message.startswith(f"{path}: got an unreadable file (")
    assert "\n" not in message and len(message) < len(str(path)) + 300
