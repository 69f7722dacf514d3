"""Building the demo dataset when another process builds it at the same time."""

import os
import stat

from recbole_slmrec.data import demo


def test_a_concurrent_build_that_finishes_first_is_kept(tmp_path, monkeypatch):
    target = tmp_path / demo.DEMO_NAME

    def write_then_lose_the_race(folder):
        (tmp_path / "staging-seen").write_text(folder)
        open(os.path.join(folder, "mine"), "w").close()
        # the other process renames its finished folder into place first
        target.mkdir()
        (target / "theirs").write_text("")

    monkeypatch.setattr(demo, "_write", write_then_lose_the_race)
    assert demo.prepare_demo(demo.DEMO_NAME, str(tmp_path)) == str(target)
    assert sorted(os.listdir(target)) == ["theirs"]
    assert not os.path.exists((tmp_path / "staging-seen").read_text())


def test_the_built_folder_is_not_private(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "_write", lambda folder: None)
    old = os.umask(0o022)
    try:
        folder = demo.prepare_demo(demo.DEMO_NAME, str(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755
