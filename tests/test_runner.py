"""End-to-end runs through the runner and the command line, on tiny fixtures."""

import subprocess
import sys

import pytest
import torch
from conftest import quiet_config, write_dataset

from recbole_slmrec import run
from recbole_slmrec.cli import main
from recbole_slmrec.compat import load_checkpoint
from recbole_slmrec.config import Config
from recbole_slmrec.model.general_recommender.slmrec import SLMRec
from recbole_slmrec.quick_start import DatasetNotFoundError
from recbole_slmrec.utils import ModelNotFoundError, get_model

METRICS = {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "precision@20"}


def check_result(result, epochs=1):
    assert set(result["test_result"]) == METRICS
    assert set(result["best_valid_result"]) == METRICS
    assert all(0.0 <= v <= 1.0 for v in result["test_result"].values())
    assert len(result["history"]) == epochs
    assert result["best_epoch"] is not None


@pytest.mark.parametrize("ssl_task", ["FAC", "FD", "FM", "FD+FM", "none"])
def test_each_ssl_task_trains(tiny, ssl_task):
    result = run("SLMRec", "tiny", config_dict=quiet_config(tiny, ssl_task=ssl_task))
    check_result(result)
    assert result["history"][0]["train_loss"] > 0


@pytest.mark.parametrize("fusion", ["concat", "mean"])
def test_each_fusion_trains(tiny, fusion):
    check_result(run("SLMRec", "tiny", config_dict=quiet_config(tiny, fusion=fusion, epochs=2)), 2)


@pytest.mark.parametrize(
    "dense,words", [({"visual": 6}, False), ({"visual": 6, "acoustic": 3}, False), (None, True)]
)
def test_one_two_and_three_modalities(tmp_path, dense, words):
    write_dataset(tmp_path, dense=dense, words=words)
    result = run("SLMRec", "tiny", config_dict=quiet_config(tmp_path))
    check_result(result)
    views = (len(dense) if dense else 2) + int(words) + 1
    assert result["config"]["embedding_size"] == 8
    state = load_checkpoint(result["model_file"])["state_dict"]
    assert state["user_fusion.weight"].shape == (8, views * 8)


def test_no_modality_is_a_clear_error(tmp_path):
    write_dataset(tmp_path, dense={})
    with pytest.raises(ValueError, match="SLMRec needs at least one modality"):
        run("SLMRec", "tiny", config_dict=quiet_config(tmp_path))


def test_lightgcn_through_the_same_runner(tiny):
    result = run("LightGCN", "tiny", config_dict=quiet_config(tiny, epochs=2))
    check_result(result, 2)
    assert result["config"]["model"] == "LightGCN"


def test_best_checkpoint_is_plain_and_reloads_with_weights_only(tiny):
    result = run("SLMRec", "tiny", config_dict=quiet_config(tiny, epochs=3, stopping_step=5))
    checkpoint = torch.load(result["model_file"], weights_only=True)
    assert checkpoint["epoch"] == result["best_epoch"]
    assert checkpoint["config"]["model"] == "SLMRec"
    assert checkpoint["other_parameter"]["restore_user_e"] is not None
    # the reported test result is that of the best checkpoint's weights
    config = Config("SLMRec", "tiny", config_dict=quiet_config(tiny))
    from recbole.data import create_dataset, data_preparation

    from recbole_slmrec.trainer import get_trainer

    _, _, test = data_preparation(config, create_dataset(config))
    model = SLMRec(config, test._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SLMRec")(config, model)
    again = trainer.evaluate(test, load_best_model=True, model_file=result["model_file"])
    assert dict(again) == pytest.approx(result["test_result"])


def test_no_ray_import(tiny):
    run("SLMRec", "tiny", config_dict=quiet_config(tiny))
    assert "ray" not in sys.modules
    assert "recbole.quick_start" not in sys.modules


def test_cli_with_overrides(tiny, capsys):
    args = [f"--{k}={v}" for k, v in quiet_config(tiny, ssl_task="FD").items()]
    assert main(["--model=SLMRec", "--dataset=tiny", *args]) == 0


def test_cli_unknown_model(tiny, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--model=NoSuchModel", "--dataset=tiny", f"--data_path={tiny}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Model [NoSuchModel] was found neither in recbole_slmrec.model" in err
    assert "SLMRec" in err


def test_missing_dataset_folder_is_a_clear_error_without_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        run("SLMRec", "nowhere", config_dict=quiet_config(tmp_path))
    message = str(error.value)
    assert f"no folder {tmp_path / 'nowhere'}" in message
    assert "python -m atomic_data_tools" in message


def test_missing_split_file_is_named(tiny):
    (tiny / "tiny" / "tiny.valid.inter").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"tiny\.valid\.inter does not exist"):
        run("SLMRec", "tiny", config_dict=quiet_config(tiny))


def test_model_lookup_order():
    assert get_model("SLMRec").__module__ == "recbole_slmrec.model.general_recommender.slmrec"
    assert get_model("LightGCN").__module__ == "recbole.model.general_recommender.lightgcn"
    assert get_model(SLMRec) is SLMRec
    with pytest.raises(ModelNotFoundError):
        get_model("slmrec_typo")


def test_name_clash_warns(monkeypatch, caplog):
    import recbole_slmrec.utils as utils

    monkeypatch.setattr(utils, "_plugin_model", lambda name: SLMRec)
    with caplog.at_level("WARNING"):
        assert utils.get_model("BPR") is SLMRec
    assert "exists in recbole_slmrec and in RecBole" in caplog.text


def test_dataset_yaml_and_plugin_defaults_are_loaded(tiny):
    config = Config("SLMRec", "tiny", config_dict={"data_path": str(tiny)})
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert [m["name"] for m in config["modalities"]] == ["visual", "acoustic"]
    assert config["valid_metric"] == "Recall@20" and config["topk"] == [10, 20]
    assert config["ssl_task"] == "FAC" and config["learning_rate"] == 0.01
    override = Config(
        "SLMRec", "tiny", config_dict={"data_path": str(tiny)}, cmd_args=["--temp=0.5"]
    )
    assert override["temp"] == 0.5


def test_python_m_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "recbole_slmrec", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--model" in out.stdout and "--key=value" in out.stdout


class _Payload:
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("cache", ["tiny-Dataset.pth", "tiny-for-SLMRec-dataloader.pth"])
def test_pickled_recbole_caches_are_refused_unopened(tiny, cache):
    import pickle

    from recbole_slmrec.quick_start import UnsafeCacheError

    saved = tiny / "saved"
    saved.mkdir()
    _Payload.marker = str(tiny / "executed")
    (saved / cache).write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UnsafeCacheError, match=cache):
        run("SLMRec", "tiny", config_dict=quiet_config(tiny))
    assert not (tiny / "executed").exists()


def test_asking_for_pickled_caches_is_refused(tiny):
    from recbole_slmrec.quick_start import UnsafeCacheError

    with pytest.raises(UnsafeCacheError, match="`save_dataset` is True"):
        run("SLMRec", "tiny", config_dict=quiet_config(tiny, save_dataset=True))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--ssl_task=fac"], "`ssl_task` is 'fac'; accepted values"),
        (["--config_files=nope.yaml"], "config file nope.yaml does not exist"),
        (["--model=a.b"], "Model [a.b] was found neither"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(tiny, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["--dataset=tiny", f"--data_path={tiny}", "--state=ERROR", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
