"""The statistics report of a conversion, saved as ``NAME.stats.json`` and printed by the CLI."""

from __future__ import annotations

import numpy as np

from atomic_data_tools.source import PreparedDataset


def build_stats(prepared: PreparedDataset) -> dict[str, object]:
    """Describe a prepared dataset.

    The report holds the users, items and interactions of each split with the duplicates
    removed from it, the width of each modality, the items that have features but no
    interactions and the reverse, the users and items without train interactions (kept), and
    the users and items dropped with the reason. It holds no path or time, so that converting
    the same release twice gives the same report.

    Args:
        prepared: the dataset.

    Returns:
        A JSON-serialisable dict.
    """
    source = prepared.source
    splits = prepared.splits
    train_users = np.unique(splits["train"].users)
    train_items = np.unique(splits["train"].items)
    split_stats = {
        name: {
            "users": int(len(np.unique(split.users))),
            "items": int(len(np.unique(split.items))),
            "interactions": len(split),
            "duplicates_removed": prepared.duplicates[name],
        }
        for name, split in splits.items()
    }
    without_train = {
        "users": int(len(np.setdiff1d(prepared.users, train_users))),
        "items": int(len(np.setdiff1d(prepared.items, train_items))),
    }
    for name in ("valid", "test"):
        users = np.setdiff1d(np.unique(splits[name].users), train_users)
        without_train[f"{name}_users"] = int(len(users))

    modalities: dict[str, dict[str, object]] = {}
    for dense in prepared.dense:
        modalities[dense.modality] = {
            "source": "dense",
            "file": dense.source,
            "width": int(dense.matrix.shape[1]),
            "rows_written": int(dense.matrix.shape[0]),
            "items_with_features_without_interactions": dense.source_rows - len(dense.ids),
            "items_with_interactions_without_features": 0,
        }
    for words in prepared.words:
        empty = sum(1 for ids in words.words.values() if not ids)
        modalities[words.modality] = {
            "source": "token_seq",
            "file": words.source,
            "field": words.field,
            "vocabulary": words.vocabulary,
            "pairs_written": words.pairs,
            "items_with_features_without_interactions": words.source_items
            - (len(words.words) - empty),
            "items_with_interactions_without_features": empty,
        }

    return {
        "dataset": prepared.name,
        "layout": source.layout,
        "files": source.files,
        "notes": source.notes,
        "declared": {"users": source.num_users, "items": prepared.num_items},
        "users": int(len(prepared.users)),
        "items": int(len(prepared.items)),
        "interactions": sum(len(split) for split in splits.values()),
        "splits": split_stats,
        "validation": prepared.validation,
        "without_train_interactions": without_train,
        "modalities": modalities,
        "dropped": _dropped(prepared),
    }


def _dropped(prepared: PreparedDataset) -> dict[str, dict[str, object]]:
    """Count the users, items and interactions left out, each with the reason."""
    declared_users = prepared.source.num_users
    users = declared_users - len(prepared.users) if declared_users is not None else 0
    items = prepared.num_items - len(prepared.items) if prepared.num_items is not None else 0
    return {
        "users": {
            "count": int(users),
            "reason": "ids below the declared user count that appear in no split",
        },
        "items": {
            "count": int(items),
            "reason": "declared or with a feature row, but in no split; their rows are not written",
        },
        "interactions": {
            "count": sum(prepared.duplicates.values()),
            "reason": "exact duplicates within a split",
        },
    }


def format_report(stats: dict[str, object]) -> str:
    """Render the report as a short text table.

    Args:
        stats: the report from :func:`build_stats`.

    Returns:
        The text, ending without a newline.
    """
    lines = [
        f"dataset {stats['dataset']} (layout {stats['layout']}): {stats['users']} users, "
        f"{stats['items']} items, {stats['interactions']} interactions",
        f"{'split':<8}{'users':>10}{'items':>10}{'interactions':>14}{'duplicates':>12}",
    ]
    for name, split in stats["splits"].items():
        lines.append(
            f"{name:<8}{split['users']:>10}{split['items']:>10}{split['interactions']:>14}"
            f"{split['duplicates_removed']:>12}"
        )
    lines.append(f"validation: {stats['validation']['source']}")
    for name, modality in stats["modalities"].items():
        width = (
            f"width {modality['width']}"
            if modality["source"] == "dense"
            else f"vocabulary {modality['vocabulary']}"
        )
        lines.append(
            f"modality {name}: {modality['source']}, {width}; items with features but no "
            f"interactions {modality['items_with_features_without_interactions']}, with "
            f"interactions but no features {modality['items_with_interactions_without_features']}"
        )
    cold = stats["without_train_interactions"]
    lines.append(
        f"without train interactions (kept): {cold['users']} users ({cold['valid_users']} in "
        f"valid, {cold['test_users']} in test), {cold['items']} items"
    )
    for what, dropped in stats["dropped"].items():
        lines.append(f"dropped {what}: {dropped['count']} ({dropped['reason']})")
    return "\n".join(lines)
