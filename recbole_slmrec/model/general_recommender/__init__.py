"""The plugin's general recommenders, found by file name like RecBole's own."""

from recbole_slmrec.model.general_recommender.slmrec import SLMRec

__all__ = ["SLMRec"]
