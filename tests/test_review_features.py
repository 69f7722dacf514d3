"""The feature hook on awkward but plausible inputs: text quirks of .ids files, dtypes, paths."""

import numpy as np
import pytest
from conftest import quiet_config, write_dataset
from recbole.data import create_dataset

from recbole_slmrec.config import Config
from recbole_slmrec.data.features import FeatureError, load_item_features, parse_modalities


def load(tmp_path, **overrides):
    config = Config("SLMRec", "tiny", config_dict=quiet_config(tmp_path, **overrides))
    dataset = create_dataset(config)
    return dataset, load_item_features(config, dataset)


def check_aligned(folder, dataset, features, modality="visual"):
    """Every item's row equals the source row named by the clean token."""
    ids = (folder / f"tiny.{modality}.ids").read_bytes().decode("utf-8-sig").split()
    matrix = np.load(folder / f"tiny.{modality}.npy").astype(np.float32)
    source = dict(zip(ids, matrix))
    feature = features.features[features.names.index(modality)]
    for item in range(1, dataset.item_num):
        token = dataset.id2token(dataset.iid_field, item)
        np.testing.assert_array_equal(feature.matrix[item], source[token])


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda b: b.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b, id="bom"),
        pytest.param(lambda b: b.replace(b"\n", b" \t\n").replace(b"i", b" i"), id="spaces"),
    ],
)
def test_ids_text_quirks_are_tolerated_and_rows_stay_aligned(tmp_path, rewrite):
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.ids"
    path.write_bytes(rewrite(path.read_bytes()))
    dataset, features = load(tmp_path)
    check_aligned(folder, dataset, features)


@pytest.mark.parametrize("where", ["middle", "end"])
def test_an_empty_ids_line_is_named(tmp_path, where):
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.ids"
    lines = path.read_text().splitlines()
    if where == "middle":
        lines[3] = ""
        number = 4
    else:
        lines.append("")
        number = 31
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FeatureError, match=rf"tiny\.visual\.ids: line {number} is empty"):
        load(tmp_path)


def test_undecodable_ids_name_the_line(tmp_path):
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.ids"
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"i\xff"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(FeatureError, match=r"tiny\.visual\.ids: line 3 is not UTF-8 \(byte 0xff\)"):
        load(tmp_path)


def test_ids_that_match_no_token_are_shown_next_to_the_missing_items(tmp_path):
    # integer-looking ids, while the dataset's item tokens are i0, i1, ...
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.ids"
    path.write_text("".join(f"{line[1:]}\n" for line in path.read_text().splitlines()))
    with pytest.raises(FeatureError) as error:
        load(tmp_path)
    message = str(error.value)
    assert "while 30 of its rows name no item of the dataset" in message
    assert "the .ids file must use the item tokens of the .inter files" in message


@pytest.mark.parametrize("dtype", [np.float64, np.float16, ">f4"])
def test_other_float_dtypes_and_fortran_order_are_aligned(tmp_path, dtype):
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.npy"
    np.save(path, np.asfortranarray(np.load(path).astype(dtype)))
    dataset, features = load(tmp_path)
    check_aligned(folder, dataset, features)
    assert features.features[0].matrix.dtype == np.float32


def test_values_beyond_float32_are_named_as_such(tmp_path):
    folder = write_dataset(tmp_path)
    path = folder / "tiny.visual.npy"
    matrix = np.load(path).astype(np.float64)
    matrix[4, 1] = 1e300
    np.save(path, matrix)
    with pytest.raises(FeatureError, match=r"row 4 .* holds 1e\+300 in column 1; it is outside"):
        load(tmp_path)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.zeros(30, np.float32), r"expected a 2-D float matrix, got shape \(30,\)"),
        (np.zeros((30, 5), np.int32), r"expected a 2-D float matrix, .* dtype int32"),
        (np.zeros((30, 0), np.float32), r"the matrix has no columns"),
    ],
)
def test_bad_matrix_shapes_and_dtypes(tmp_path, matrix, message):
    folder = write_dataset(tmp_path)
    np.save(folder / "tiny.visual.npy", matrix)
    text = (folder / "tiny.yaml").read_text().replace(", width: 5", "")
    (folder / "tiny.yaml").write_text(text)
    with pytest.raises(FeatureError, match=message):
        load(tmp_path)


def test_a_huge_width_mismatch_is_refused_before_reading_rows(tmp_path):
    folder = write_dataset(tmp_path)
    np.save(folder / "tiny.visual.npy", np.zeros((30, 50_000), np.float32))
    with pytest.raises(FeatureError, match="the matrix has 50000 columns, but .* width 5"):
        load(tmp_path)


def test_a_relative_file_may_not_leave_the_dataset_folder(tmp_path):
    folder = write_dataset(tmp_path)
    for suffix in ("npy", "ids"):
        (tmp_path / f"outside.{suffix}").write_bytes(
            (folder / f"tiny.visual.{suffix}").read_bytes()
        )
    text = (folder / "tiny.yaml").read_text()
    (folder / "tiny.yaml").write_text(text.replace("file: tiny.visual.npy", "file: ../outside.npy"))
    with pytest.raises(FeatureError, match=r"'\.\./outside\.npy' lies outside the dataset folder"):
        load(tmp_path)
    # an absolute path is a deliberate choice, and is read
    absolute = tmp_path / "outside.npy"
    (folder / "tiny.yaml").write_text(text.replace("file: tiny.visual.npy", f"file: {absolute}"))
    dataset, features = load(tmp_path)
    assert features.names == ["visual", "acoustic"]


def test_a_boolean_width_is_refused():
    entry = {"name": "v", "source": "dense", "file": "v.npy", "width": True}
    with pytest.raises(FeatureError, match=r"modalities\[0\]\.width is True"):
        parse_modalities({"modalities": [entry]})


def test_a_feature_file_linked_into_the_dataset_folder_is_read(tmp_path):
    # large feature files are often shared through symbolic links
    folder = write_dataset(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    for suffix in ("npy", "ids"):
        (folder / f"tiny.visual.{suffix}").rename(shared / f"visual.{suffix}")
        (folder / f"tiny.visual.{suffix}").symlink_to(shared / f"visual.{suffix}")
    dataset, features = load(tmp_path)
    check_aligned(folder, dataset, features)


@pytest.mark.parametrize(
    "name, message",
    [
        ("a.b", r"name is 'a\.b'; expected a non-empty name of letters"),
        ("a b", r"name is 'a b'; expected a non-empty name of letters"),
        ("", r"name is ''; expected"),
        ("keys", r"name 'keys' is reserved"),
        ("training", r"name 'training' is reserved"),
    ],
)
def test_modality_names_that_cannot_name_a_module(name, message):
    # "a.b" and "keys" crashed the models with a KeyError from torch before
    entry = {"name": name, "source": "dense", "file": "v.npy"}
    with pytest.raises(FeatureError, match=rf"modalities\[0\]\.{message}"):
        parse_modalities({"modalities": [entry]})


def test_usual_modality_names_are_accepted():
    names = ["visual", "acoustic", "textual", "knowledge", "visual-2", "img_1"]
    entries = [{"name": n, "source": "dense", "file": f"{n}.npy"} for n in names]
    assert [m.name for m in parse_modalities({"modalities": entries})] == names
