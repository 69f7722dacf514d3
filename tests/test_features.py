"""The feature hook: alignment to RecBole's item ids, and every refusal with its message."""

import logging
import re

import numpy as np
import pytest
from conftest import quiet_config, write_dataset
from recbole.data import create_dataset

from recbole_slmrec.config import Config
from recbole_slmrec.data.features import FeatureError, load_item_features, parse_modalities


def load(tmp_path, **overrides):
    config = Config("SLMRec", "tiny", config_dict=quiet_config(tmp_path, **overrides))
    dataset = create_dataset(config)
    return config, dataset, load_item_features(config, dataset)


def source_rows(folder, modality):
    matrix = np.load(folder / f"tiny.{modality}.npy")
    ids = (folder / f"tiny.{modality}.ids").read_text().split()
    return dict(zip(ids, matrix))


def test_rows_follow_internal_ids_under_shuffled_and_missing_ids(tmp_path, caplog):
    # the .ids files list items in shuffled order, and acoustic lacks items 3 and 7
    keep = [i for i in range(30) if i not in (3, 7)]
    folder = write_dataset(tmp_path, feature_items={"acoustic": keep})
    with caplog.at_level(logging.WARNING):
        config, dataset, features = load(tmp_path, missing_feature_policy="zero")
    visual, acoustic = features.features
    assert features.names == ["visual", "acoustic"]
    assert visual.matrix.shape == (dataset.item_num, 5)
    assert not visual.matrix[0].any(), "row 0 is the padding item"
    for name, feature in (("visual", visual), ("acoustic", acoustic)):
        rows = source_rows(folder, name)
        for internal in range(1, dataset.item_num):
            token = dataset.id2token("item_id", internal)
            expected = rows.get(token, np.zeros(feature.width, dtype=np.float32))
            np.testing.assert_array_equal(feature.matrix[internal], expected)
    in_data = {dataset.id2token("item_id", i) for i in range(1, dataset.item_num)}
    assert acoustic.missing == len(in_data & {"i3", "i7"})
    if acoustic.missing:
        assert "they get zero features" in caplog.text


def test_rows_of_items_outside_the_data_are_ignored_and_counted(tmp_path, caplog):
    folder = write_dataset(tmp_path, dense={"visual": 4})
    ids = (folder / "tiny.visual.ids").read_text().splitlines()
    matrix = np.load(folder / "tiny.visual.npy")
    np.save(folder / "tiny.visual.npy", np.vstack([matrix, np.ones((2, 4), np.float32)]))
    (folder / "tiny.visual.ids").write_text("\n".join(ids + ["ghost1", "ghost2"]) + "\n")
    with caplog.at_level(logging.INFO):
        _, dataset, features = load(tmp_path)
    unused = 30 - (dataset.item_num - 1)
    assert f"{2 + unused} feature rows belong to items not in the dataset; ignored" in caplog.text
    assert features.features[0].matrix.shape[0] == dataset.item_num


def test_missing_rows_are_an_error_by_default_with_count_and_examples(tmp_path):
    write_dataset(tmp_path, feature_items={"acoustic": list(range(2, 30))})
    with pytest.raises(FeatureError) as error:
        load(tmp_path)
    message = str(error.value)
    assert re.search(
        r"\d+ of \d+ items have no acoustic features in .*tiny\.acoustic\.npy", message
    )
    assert "for example items" in message and "missing: zero" in message


def test_widths_disagree(tmp_path):
    folder = write_dataset(tmp_path)
    text = (folder / "tiny.yaml").read_text().replace("width: 5", "width: 6")
    (folder / "tiny.yaml").write_text(text)
    with pytest.raises(
        FeatureError,
        match="widths disagree: the matrix has 5 columns, but modality visual declares width 6",
    ):
        load(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_name_the_row_and_item(tmp_path, bad):
    folder = write_dataset(tmp_path)
    matrix = np.load(folder / "tiny.visual.npy")
    matrix[4, 2] = bad
    np.save(folder / "tiny.visual.npy", matrix)
    token = (folder / "tiny.visual.ids").read_text().split()[4]
    with pytest.raises(FeatureError, match=rf"row 4 \(item '{token}'\) holds {bad} in column 2"):
        load(tmp_path)


def test_matrix_without_id_file(tmp_path):
    folder = write_dataset(tmp_path)
    (folder / "tiny.acoustic.ids").unlink()
    with pytest.raises(FeatureError, match=r"tiny\.acoustic\.npy has no id column"):
        load(tmp_path)


def test_duplicated_ids(tmp_path):
    folder = write_dataset(tmp_path)
    ids = (folder / "tiny.visual.ids").read_text().splitlines()
    ids[6] = ids[2]
    (folder / "tiny.visual.ids").write_text("\n".join(ids) + "\n")
    with pytest.raises(FeatureError, match=rf"item id '{ids[2]}' is duplicated, on lines 3 and 7"):
        load(tmp_path)


def test_row_count_must_match_ids(tmp_path):
    folder = write_dataset(tmp_path)
    ids = (folder / "tiny.visual.ids").read_text().splitlines()
    (folder / "tiny.visual.ids").write_text("\n".join(ids[:-1]) + "\n")
    with pytest.raises(FeatureError, match="names 29 items, but .* has 30 rows"):
        load(tmp_path)


class _Payload:
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_arrays_are_refused_without_running_them(tmp_path):
    folder = write_dataset(tmp_path)
    _Payload.marker = str(tmp_path / "executed")
    payload = np.array([_Payload()] * 30, dtype=object)
    np.save(folder / "tiny.visual.npy", payload, allow_pickle=True)
    with pytest.raises(FeatureError, match="not a plain numeric .npy matrix"):
        load(tmp_path)
    assert not (tmp_path / "executed").exists()


def test_word_ids_are_aligned_from_the_item_file(tmp_path):
    folder = write_dataset(tmp_path, words=True)
    _, dataset, features = load(tmp_path)
    words = features.features[2]
    assert words.name == "textual" and words.width == 4
    lines = (folder / "tiny.item").read_text().splitlines()[1:]
    expected = dict(line.split("\t") for line in lines)
    for internal in range(1, dataset.item_num):
        token = dataset.id2token("item_id", internal)
        ids = [int(w) for w in words.tokens[internal] if w > 0]
        assert sorted(dataset.id2token("words", ids).tolist()) == sorted(expected[token].split())


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"source": "dense", "file": "x.npy"}, r"modalities\[0\]\.name is None"),
        ({"name": "v", "source": "video", "file": "x"}, "expected one of dense, token_seq"),
        ({"name": "v", "source": "dense"}, "needs the key `file`"),
        ({"name": "v", "source": "token_seq"}, "needs the key `field`"),
        ({"name": "v", "file": "x", "width": -2}, "width is -2; expected a positive integer"),
        ({"name": "v", "file": "x", "missing": "drop"}, "expected one of error, zero"),
        ({"name": "v", "file": "x", "colour": 1}, r"unknown keys \['colour'\]"),
    ],
)
def test_bad_declarations(entry, message):
    with pytest.raises(FeatureError, match=message):
        parse_modalities({"modalities": [entry]})


def test_duplicate_modality_names():
    entries = [{"name": "v", "file": "a.npy"}, {"name": "v", "file": "b.npy"}]
    with pytest.raises(FeatureError, match=r"modalities\[1\]\.name 'v' is declared twice"):
        parse_modalities({"modalities": entries})
