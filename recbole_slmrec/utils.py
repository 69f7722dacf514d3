"""Model look-up: the plugin's models first, then RecBole's."""

from __future__ import annotations

import importlib
import importlib.util
import os
from logging import getLogger

import recbole.model

from recbole_slmrec.compat import disable_stray_anomaly_detection

PLUGIN_FAMILIES = ("general_recommender",)
RECBOLE_MODEL_DIR = os.path.dirname(os.path.abspath(recbole.model.__file__))
RECBOLE_FAMILIES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


class ModelNotFoundError(ValueError):
    """No model of that name exists in the plugin or in RecBole."""


def _plugin_model(name: str) -> type | None:
    if not name.isidentifier():
        return None
    for family in PLUGIN_FAMILIES:
        module_path = f"recbole_slmrec.model.{family}.{name.lower()}"
        if importlib.util.find_spec(module_path) is not None:
            module = importlib.import_module(module_path)
            if hasattr(module, name):
                return getattr(module, name)
    return None


def _recbole_model(name: str) -> type | None:
    if not name.isidentifier():
        return None
    # Look for the file first: importing a family package imports every model in it, and
    # some of them have side effects (SINE turns on autograd anomaly detection globally).
    for family in RECBOLE_FAMILIES:
        if os.path.isfile(os.path.join(RECBOLE_MODEL_DIR, family, f"{name.lower()}.py")):
            module = importlib.import_module(f"recbole.model.{family}.{name.lower()}")
            disable_stray_anomaly_detection(name)
            return getattr(module, name, None)
    return None


def plugin_model_names() -> list[str]:
    """The names of the models that this plugin provides."""
    from recbole_slmrec.model import general_recommender

    return sorted(general_recommender.__all__)


def get_model(model: str | type) -> type:
    """The model class for ``model``, searching the plugin first and then RecBole.

    Args:
        model: a model name such as ``"SLMRec"`` or ``"LightGCN"``, or a model class, which is
            returned unchanged.

    Returns:
        The model class.

    Raises:
        ModelNotFoundError: naming the model and the places that were searched.
    """
    if isinstance(model, type):
        return model
    plugin_cls = _plugin_model(model)
    recbole_cls = _recbole_model(model)
    if plugin_cls is not None:
        if recbole_cls is not None:
            getLogger(__name__).warning(
                f"Model [{model}] exists in recbole_slmrec and in RecBole; using the plugin's "
                f"{plugin_cls.__module__}.{model}. Pass the class itself to choose RecBole's."
            )
        return plugin_cls
    if recbole_cls is not None:
        return recbole_cls
    raise ModelNotFoundError(
        f"Model [{model}] was found neither in recbole_slmrec.model ({', '.join(PLUGIN_FAMILIES)}) "
        f"nor in recbole.model. Plugin models: {', '.join(plugin_model_names())}; model names "
        "are case-sensitive, as in RecBole (e.g. LightGCN, BPR)."
    )
