"""recbole-slmrec: self-supervised multimedia recommendation (SLMRec) as a RecBole plugin."""

__version__ = "0.1.0"

from recbole_slmrec.config import Config  # noqa: E402
from recbole_slmrec.quick_start import run  # noqa: E402
from recbole_slmrec.utils import get_model  # noqa: E402

__all__ = ["Config", "get_model", "run", "__version__"]
