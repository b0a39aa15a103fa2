"""A file a sandboxed process wrote is read without trusting it (issue 13 follow-up):
a FIFO, a symlink, a directory or an oversized file is refused at once, never followed
and never waited on."""

from __future__ import annotations

import os

import pytest

from ftforge.sandbox import SandboxError, read_written


def test_a_plain_answer_is_read(tmp_path):
    (tmp_path / "output.json").write_bytes(b'{"return_val": []}')
    assert read_written(tmp_path / "output.json", what="probe", max_bytes=100) == \
        b'{"return_val": []}'


def test_a_missing_answer_is_none(tmp_path):
    assert read_written(tmp_path / "output.json", what="probe", max_bytes=100) is None


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "big"])
def test_a_hostile_answer_is_refused_at_once(tmp_path, kind):
    answer = tmp_path / "output.json"
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    if kind == "fifo":
        os.mkfifo(answer)  # a blocking open would hang here forever
    elif kind == "symlink":
        answer.symlink_to(secret)
    elif kind == "directory":
        answer.mkdir()
    else:
        answer.write_bytes(b"x" * 101)
    with pytest.raises(SandboxError, match="probe: its answer output.json"):
        read_written(answer, what="probe", max_bytes=100)
