"""Bad releases are refused with a ConversionError naming the file, place, value and expectation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from atomic_data_tools import ConversionError, ConvertOptions, convert
from tests.atomic_fixtures import (
    MMREC_HEADER,
    TRAIN,
    coo,
    features,
    make_mmgcn,
    make_mmrec,
    make_mmssl,
    make_slmrec,
    mmrec_lines,
    write_pairs,
)


def refused(source, tmp_path, layout: str = "auto", **options: object) -> str:
    """Convert ``source``, expect a refusal, check nothing was written, return the message."""
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as caught:
        convert(source, ConvertOptions(dataset="tiny", **options), layout, out)
    assert not out.exists()
    return str(caught.value)


def test_slmrec_wrong_separator(tmp_path):
    source = make_slmrec(tmp_path / "src")
    write_pairs(source / "tiny.test", [(0, 4), (1, 5)], separator="\t")
    message = refused(source, tmp_path)
    assert message.startswith(f"{source / 'tiny.test'}: line 1: got '0\\t4'")
    assert "(it seems to use a tab)" in message
    assert message.endswith("expected 2 fields separated by a comma")


def test_mmrec_wrong_separator_in_header_and_rows(tmp_path):
    source = make_mmrec(tmp_path / "src", prefix="tiny")
    path = source / "tiny.inter"
    path.write_text(MMREC_HEADER.replace("\t", ",") + "\n", encoding="utf-8")
    message = refused(source, tmp_path)
    assert f"{path}: line 1 (header): got 'userID,itemID" in message
    assert "(it seems to use a comma)" in message and "tab-separated column names" in message

    lines = mmrec_lines()
    lines[3] = lines[3].replace("\t", ";")
    path.write_text("\n".join([MMREC_HEADER] + lines) + "\n", encoding="utf-8")
    message = refused(source, tmp_path)
    assert f"{path}: line 5: got" in message and "(it seems to use a semicolon)" in message
    assert "expected 5 fields separated by a tab" in message


def test_slmrec_non_numeric_id(tmp_path):
    source = make_slmrec(tmp_path / "src")
    (source / "tiny.train").write_text("0,1\n0,2\n\nu7,3\n", encoding="utf-8")
    message = refused(source, tmp_path)
    assert message == (
        f"{source / 'tiny.train'}: line 4: got user id 'u7'; "
        "expected a non-negative decimal integer"
    )


def test_mmrec_bad_label_and_rating(tmp_path):
    source = make_mmrec(tmp_path / "src", prefix="tiny")
    path = source / "tiny.inter"
    lines = mmrec_lines()
    path.write_text("\n".join([MMREC_HEADER, lines[0][:-1] + "3"]) + "\n", encoding="utf-8")
    assert refused(source, tmp_path) == (
        f"{path}: line 2: got x_label '3'; expected 0 (train), 1 (valid) or 2 (test)"
    )
    path.write_text(f"{MMREC_HEADER}\n0\t1\tgood\t5\t0\n", encoding="utf-8")
    assert (
        refused(source, tmp_path) == f"{path}: line 2: got rating 'good'; expected a finite number"
    )


def test_slmrec_item_out_of_feature_range(tmp_path):
    source = make_slmrec(tmp_path / "src", dataset="kwai")
    write_pairs(source / "tiny.test", [(0, 4), (1, 9)])
    assert refused(source, tmp_path) == (
        f"{source / 'tiny.test'}: line 2: got item id 9; "
        "expected an id below the 7 rows of tiny_feat_v.pt"
    )


def test_mmgcn_negative_id(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    np.save(source / "train.npy", np.array([[0, 5], [-1, 6]], dtype=np.int64))
    assert refused(source, tmp_path) == (
        f"{source / 'train.npy'}: row 1: got user id -1; expected 0 <= id <= 2147483647"
    )


def test_mmssl_index_beyond_shape(tmp_path):
    source = make_mmssl(tmp_path / "src")
    matrix = coo([(0, 1)])
    matrix.col[0] = 9
    with open(source / "tstMat.pkl", "wb") as stream:
        pickle.dump(matrix, stream)
    assert refused(source, tmp_path) == (
        f"{source / 'tstMat.pkl'}: entry 0: got col index 9; expected 0 <= index < 7 (shape)"
    )


def test_mmgcn_numbering_fits_neither(tmp_path, caplog):
    source = make_mmgcn(tmp_path / "src")
    train = np.load(source / "train.npy")
    np.save(source / "train.npy", np.vstack([train, [[1, 2]]]))
    message = refused(source, tmp_path)
    assert message == (
        f"{source}: item ids: got items 2..9 with 4 users and 7 feature rows; expected items "
        "numbered after the users (4..10) or items numbered from 0 (0..6)"
    )
    forced = refused(
        make_mmgcn(tmp_path / "zero", numbering="zero"), tmp_path, item_numbering="offset"
    )
    assert "got items 0..5 with 4 users" in forced
    assert forced.endswith("expected items numbered after the users (4..10)")


def test_mmssl_feature_rows_disagree_with_item_count(tmp_path):
    source = make_mmssl(tmp_path / "src", modalities=("visual",))
    np.save(source / "audio_feat.npy", features("acoustic", rows=6))
    assert refused(source, tmp_path) == (
        f"{source / 'audio_feat.npy'}: rows: got 6 feature rows; "
        "expected one row per item: the item count 7 of trnMat.pkl"
    )


def test_slmrec_feature_modalities_disagree(tmp_path):
    source = make_slmrec(tmp_path / "src", dataset="movielens")
    np.save(source / "tiny_FeatureAudio_avg_normal.npy", features("acoustic", rows=8))
    assert refused(source, tmp_path) == (
        f"{source / 'tiny_FeatureAudio_avg_normal.npy'}: rows: got 8 feature rows; "
        "expected one row per item: the 7 rows of tiny_FeatureVideo_normal.npy"
    )


def test_nan_in_features(tmp_path):
    source = make_mmssl(tmp_path / "src")
    matrix = features("visual")
    matrix[3, 2] = np.nan
    np.save(source / "image_feat.npy", matrix.astype(np.float16))
    assert refused(source, tmp_path) == (
        f"{source / 'image_feat.npy'}: row 3, column 2: got nan; expected finite feature values "
        "(no NaN or infinity, also after conversion to float32)"
    )

    source = make_mmgcn(tmp_path / "mmgcn", dataset="kwai")
    matrix = features("visual")
    matrix[5, 0] = np.inf
    torch.save(torch.from_numpy(matrix), source / "feat_v.pt")
    assert f"{source / 'feat_v.pt'}: row 5, column 0: got inf" in refused(source, tmp_path)


def test_same_interaction_in_two_splits(tmp_path):
    source = make_mmssl(tmp_path / "src")
    with open(source / "valMat.pkl", "wb") as stream:
        pickle.dump(coo([(1, 4), TRAIN[2]]), stream)
    assert refused(source, tmp_path) == (
        f"{source / 'valMat.pkl'}: entry 1: got the valid interaction (user 0, item 2), which is "
        "also a train interaction (trnMat.pkl, entry 2); expected the train, valid and test "
        "splits to be disjoint"
    )


def test_same_interaction_in_two_splits_quotes_file_ids(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    rows = np.empty(1, dtype=object)
    rows[0] = [3, 9, 4]
    np.save(source / "test_full.npy", rows, allow_pickle=True)
    assert refused(source, tmp_path) == (
        f"{source / 'test_full.npy'}: row 0: got the test interaction (user 3, item 4), which is "
        "also a train interaction (train.npy, row 7); expected the train, valid and test splits "
        "to be disjoint"
    )


def test_forbidden_class_in_a_release_pickle(tmp_path):
    source = make_mmssl(tmp_path / "src")
    marker = tmp_path / "marker"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (source / "valMat.pkl").write_bytes(payload)
    message = refused(source, tmp_path)
    assert message.startswith(f"{source / 'valMat.pkl'}: pickle global: got os.system; expected")
    assert not marker.exists()


def test_mmgcn_bad_object_rows(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    rows = np.empty(2, dtype=object)
    rows[0] = [0, 4]
    rows[1] = [1, "5"]
    np.save(source / "val_full.npy", rows, allow_pickle=True)
    assert refused(source, tmp_path) == (
        f"{source / 'val_full.npy'}: row 1, position 1: got '5'; expected an integer id"
    )


def test_mmgcn_both_evaluation_names(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    (source / "val.npy").write_bytes((source / "val_full.npy").read_bytes())
    assert refused(source, tmp_path) == (
        f"{source}: got both val_full.npy and val.npy; "
        "expected exactly one of val_full.npy, val.npy"
    )


def test_tensor_file_that_is_not_weights_only(tmp_path):
    source = make_mmgcn(tmp_path / "src", dataset="kwai")
    marker = tmp_path / "marker"
    with open(source / "feat_v.pt", "wb") as stream:
        stream.write(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    message = refused(source, tmp_path)
    assert message.startswith(f"{source / 'feat_v.pt'}: got an unreadable file")
    assert message.endswith("expected a saved tensor")
    assert not marker.exists()


def test_word_pairs_of_wrong_shape(tmp_path):
    source = make_mmgcn(tmp_path / "src")
    torch.save(torch.zeros(3, 4, dtype=torch.int64), source / "feat_t.pt")
    assert refused(source, tmp_path) == (
        f"{source / 'feat_t.pt'}: got a int64 array of shape (3, 4); expected a float matrix or a "
        "2 x N integer tensor of (item, word id) pairs"
    )


def test_missing_file_and_unknown_layout(tmp_path):
    source = make_mmssl(tmp_path / "src")
    os.remove(source / "tstMat.pkl")
    assert refused(source, tmp_path) == (
        f"{source}: tstMat.pkl: got no such file; expected a pickled scipy.sparse.coo_matrix"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    message = refused(empty, tmp_path)
    assert message.startswith(f"{empty}: layout: got no known layout's files; expected exactly one")
    assert refused(tmp_path / "absent", tmp_path) == (
        f"{tmp_path / 'absent'}: got no such folder; expected the folder of a release"
    )


def test_bad_validation_ratio(tmp_path):
    source = make_slmrec(tmp_path / "src")
    assert (
        refused(source, tmp_path, val_ratio=1.0) == "--val-ratio: got 1.0; expected 0 < ratio < 1"
    )


def test_npz_archive_instead_of_npy(tmp_path):
    source = make_mmssl(tmp_path / "src", modalities=())
    with open(source / "image_feat.npy", "wb") as stream:
        np.savez(stream, features=features("visual"))
    assert refused(source, tmp_path) == (
        f"{source / 'image_feat.npy'}: got an .npz archive; expected a numeric .npy array"
    )
