"""The plugin's general recommenders, found by file name like RecBole's own."""

from recbole_slmrec.model.general_recommender.mmgcn import MMGCN
from recbole_slmrec.model.general_recommender.slmrec import SLMRec
from recbole_slmrec.model.general_recommender.vbpr import VBPR

__all__ = ["MMGCN", "SLMRec", "VBPR"]
