"""Configuration: RecBole's ``Config``, overlaid with the plugin's and the dataset's YAML."""

from __future__ import annotations

import os
from collections.abc import Sequence
from logging import getLogger

from recbole.config import Config as RecBoleConfig

from recbole_slmrec.distributed import init_distributed_device
from recbole_slmrec.utils import get_model

PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "properties")


def dataset_yaml_path(data_path: str, dataset: str) -> str:
    """The YAML file that a converted dataset folder carries: ``<data_path>/<name>/<name>.yaml``."""
    return os.path.join(data_path, dataset, f"{dataset}.yaml")


class Config(RecBoleConfig):
    """RecBole's configuration, extended for plugin models and converted datasets.

    The internal defaults are read in this order, each overriding the one before:
    RecBole's ``overall.yaml``, RecBole's model and dataset YAML, then the plugin's
    ``properties/overall.yaml``, ``properties/model/<model>.yaml`` and
    ``properties/dataset/<dataset>.yaml``, and last the ``<dataset>.yaml`` inside the dataset
    folder. Config files, ``config_dict`` and command-line arguments override all of them, in
    RecBole's order. A configuration holding ``local_rank`` joins a process group with NCCL on
    GPUs or gloo on the CPU (:func:`~recbole_slmrec.distributed.init_distributed_device`).

    Args:
        model: a model name (plugin first, then RecBole) or class.
        dataset: the dataset name.
        config_file_list: YAML files.
        config_dict: parameter overrides.
        cmd_args: ``--key=value`` arguments; ``None`` reads none (RecBole would read
            ``sys.argv``, which surprises scripts and notebooks).
    """

    def __init__(
        self,
        model: str | type | None = None,
        dataset: str | None = None,
        config_file_list: Sequence[str] | None = None,
        config_dict: dict | None = None,
        cmd_args: Sequence[str] | None = None,
    ):
        self._cmd_args = list(cmd_args or [])
        super().__init__(
            model=model,
            dataset=dataset,
            config_file_list=list(config_file_list) if config_file_list else None,
            config_dict=config_dict,
        )

    def _load_cmd_line(self) -> dict:
        cmd_config_dict: dict = {}
        unrecognized = []
        for arg in self._cmd_args:
            if not arg.startswith("--") or len(arg[2:].split("=")) != 2:
                unrecognized.append(arg)
                continue
            name, value = arg[2:].split("=")
            if name in cmd_config_dict and value != cmd_config_dict[name]:
                raise SyntaxError(f"Command-line argument --{name} is given twice: {arg}")
            cmd_config_dict[name] = value
        if unrecognized:
            getLogger(__name__).warning(
                f"command-line arguments [{' '.join(unrecognized)}] are not --key=value; ignored"
            )
        return self._convert_config_dict(cmd_config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("No model given: pass --model=NAME, or set `model` in a config.")
        return super()._get_model_and_dataset(get_model(model), dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        data_path = self.external_config_dict.get(
            "data_path", self.internal_config_dict.get("data_path", "dataset/")
        )
        overlays = [
            (os.path.join(PROPERTIES_DIR, "overall.yaml"), False),
            (os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"), False),
            (os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"), True),
            (dataset_yaml_path(data_path, dataset), True),
        ]
        for path, is_dataset in overlays:
            if not os.path.isfile(path):
                continue
            loaded = self._update_internal_config_dict(path) or {}
            if is_dataset:
                self.parameters["Dataset"] += [
                    key for key in loaded if key not in self.parameters["Dataset"]
                ]

    def _init_device(self):
        if "local_rank" in self.final_config_dict:
            init_distributed_device(self.final_config_dict)
        else:
            super()._init_device()
