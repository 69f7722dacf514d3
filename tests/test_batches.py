"""The count of in-batch negatives that are a user's own training items, against brute force."""

import json

import pytest
import torch
from conftest import write_dataset

from recbole_slmrec.model.losses import pair_index
from recbole_slmrec.perf import batches


def brute_force(users, items, positives):
    kinds = {"repeated_item": 0, "same_user": 0, "other": 0}
    for k in range(len(users)):
        for j in range(len(users)):
            if j == k or (users[k], items[j]) not in positives:
                continue
            if items[j] == items[k]:
                kinds["repeated_item"] += 1
            elif users[j] == users[k]:
                kinds["same_user"] += 1
            else:
                kinds["other"] += 1
    return {kind: n / len(users) for kind, n in kinds.items()}


def test_count_hits_by_kind_matches_brute_force():
    torch.manual_seed(5)
    users = torch.randint(1, 6, (40,))
    items = torch.randint(1, 9, (40,))
    positives = set(zip(users.tolist(), items.tolist()))
    index = pair_index(users, items, n_rows=6)
    rows = torch.randperm(40)[:15]
    counts = batches.count_hits(index, 9, users[rows], items[rows])
    expected = brute_force(users[rows].tolist(), items[rows].tolist(), positives)
    assert counts.repeated_item == pytest.approx(expected["repeated_item"])
    assert counts.same_user == pytest.approx(expected["same_user"])
    assert counts.other == pytest.approx(expected["other"])
    assert counts.total > 0 and counts.share == pytest.approx(counts.total / 14)


def test_sample_hits_is_seeded_and_refuses_bad_sizes():
    users = torch.tensor([1, 1, 2, 2, 3, 3])
    items = torch.tensor([1, 2, 1, 3, 2, 3])
    first = batches.sample_hits(users, items, 4, 4, batch_size=4, n_batches=5, seed=1)
    again = batches.sample_hits(users, items, 4, 4, batch_size=4, n_batches=5, seed=1)
    assert first == again
    # the whole set in one batch: every row sees every other pair, so the count is exact
    whole = batches.sample_hits(users, items, 4, 4, batch_size=100, n_batches=1)
    expected = brute_force(users.tolist(), items.tolist(), set(zip(users.tolist(), items.tolist())))
    assert whole.batch_size == 6
    assert whole.total == pytest.approx(sum(expected.values()))
    with pytest.raises(ValueError, match="batch_size >= 2"):
        batches.sample_hits(users, items, 4, 4, batch_size=1, n_batches=1)


def test_command_line_on_a_dataset(tmp_path, capsys):
    write_dataset(tmp_path)
    out = tmp_path / "hits.json"
    code = batches.main(
        [
            "--dataset=tiny",
            f"--data_path={tmp_path}",
            "--batch_size=16",
            "--batches=3",
            f"--json={out}",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "tiny: 48 training pairs, 12 users, " in printed
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["batch_size"] == 16 and figures["batches"] == 3
    assert figures["total"] == pytest.approx(
        figures["repeated_item"] + figures["same_user"] + figures["other"]
    )
    assert f"{figures['share']:.1%}" in printed
