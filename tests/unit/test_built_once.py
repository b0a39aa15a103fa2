"""atomic.built_once: a cached directory is made once, marked, renamed into place."""

import pytest

from ftforge.atomic import built_once


def test_made_once_then_reused(tmp_path):
    calls = []

    def make(part):
        calls.append(part)
        part.mkdir()
        (part / "payload").write_text("x")
        return "made\n"

    target = tmp_path / "cache" / "thing"
    assert built_once(target, ".done", make) == target
    assert (target / ".done").read_text() == "made\n" and (target / "payload").is_file()
    assert not target.with_name("thing.part").exists()
    assert built_once(target, ".done", make) == target
    assert len(calls) == 1


def test_a_failed_make_leaves_the_old_target_and_no_marker(tmp_path):
    target = tmp_path / "thing"
    target.mkdir()
    (target / "old").write_text("unmarked leftover")

    def fail(part):
        part.mkdir()
        raise RuntimeError("download failed")

    with pytest.raises(RuntimeError, match="download failed"):
        built_once(target, ".done", fail)
    assert (target / "old").is_file() and not (target / ".done").exists()
    # the next attempt clears the failed part and replaces the unmarked target
    built_once(target, ".done", lambda part: (part.mkdir(), "ok")[1])
    assert (target / ".done").read_text() == "ok" and not (target / "old").exists()
