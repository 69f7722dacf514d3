"""The MMSSL / DiffMM release (Wei et al., "Multi-Modal Self-Supervised Learning for
Recommendation", WWW 2023; Jiang et al., "DiffMM", ACM MM 2024)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from atomic_data_tools.errors import ConversionError
from atomic_data_tools.layouts.base import Converter, register
from atomic_data_tools.readers import FeatureFile, load_features, require_file
from atomic_data_tools.safe_pickle import load_coo
from atomic_data_tools.source import ConvertOptions, SourceData, SplitData

logger = logging.getLogger(__name__)

MATRICES = {"train": "trnMat.pkl", "valid": "valMat.pkl", "test": "tstMat.pkl"}
"""The pickled users-by-items matrix of each split."""

FEATURES = [
    FeatureFile("visual", "image_feat.npy"),
    FeatureFile("acoustic", "audio_feat.npy"),
    FeatureFile("textual", "text_feat.npy"),
]
"""The optional dense features, row ``i`` belonging to item column ``i``."""


@register
class MMSSLConverter(Converter):
    """Converter of the MMSSL / DiffMM release.

    Files of the release folder:

    * ``trnMat.pkl``, ``valMat.pkl`` and ``tstMat.pkl``: pickled ``scipy.sparse.coo_matrix``
      objects of the same shape, users by items. Every stored entry with a non-zero value is an
      interaction (explicit zeros are skipped and counted). They are unpickled through the
      allow-list of :func:`~atomic_data_tools.safe_pickle.load_coo`.
    * ``image_feat.npy`` (visual), ``audio_feat.npy`` (acoustic) and ``text_feat.npy``
      (textual): float16 or float32 matrices with one row per item column; any of them may be
      absent. Their row count must equal the matrices' item count.

    User and item tokens are the row and column indices of the matrices. Users and items that
    appear in no split are dropped and reported; users or items without train interactions are
    kept and reported.
    """

    name = "mmssl"
    summary = (
        "trnMat.pkl, valMat.pkl, tstMat.pkl (pickled scipy COO matrices, users x items)\n"
        "features (each optional, row i = item i): image_feat.npy, audio_feat.npy,\n"
        "text_feat.npy (float16 or float32)."
    )

    @classmethod
    def detect(cls, folder: Path, options: ConvertOptions) -> bool:
        """Tell whether ``folder`` holds ``trnMat.pkl``.

        Args:
            folder: the release folder.
            options: unused by this layout.

        Returns:
            Whether the signature file is present.
        """
        return (folder / MATRICES["train"]).is_file()

    def read(self, folder: Path, options: ConvertOptions) -> SourceData:
        """Read the three matrices and the features present.

        Args:
            folder: the release folder.
            options: unused by this layout.

        Returns:
            The splits, the features and the declared user and item counts.

        Raises:
            ConversionError: if a file is missing or malformed, a pickle names a forbidden
                class, or the shapes disagree.
        """
        splits = {}
        shape = None
        zeros = 0
        for split, name in MATRICES.items():
            path = require_file(folder, name, "a pickled scipy.sparse.coo_matrix")
            matrix = load_coo(path)
            if shape is None:
                shape = matrix.shape
            elif matrix.shape != shape:
                raise ConversionError(
                    path, "shape", str(matrix.shape), f"{shape}, the shape of {MATRICES['train']}"
                )
            keep = matrix.data != 0
            zeros += int((~keep).sum())
            splits[split] = SplitData(
                name=split,
                source=name,
                location="entry",
                users=matrix.row[keep].astype(np.int64),
                items=matrix.col[keep].astype(np.int64),
                rows=np.flatnonzero(keep).astype(np.int64),
            )
        if zeros:
            logger.warning("%s: skipped %d stored entries whose value is 0", folder, zeros)
        dense, _, files = load_features(folder, FEATURES)
        return SourceData(
            layout=self.name,
            files=list(MATRICES.values()) + files,
            splits=splits,
            dense=dense,
            num_users=shape[0],
            num_items=shape[1],
            notes={"explicit_zeros_skipped": zeros},
        )
