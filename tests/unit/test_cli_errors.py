"""Bad input on the command line: one message, a hint, non-zero exit, no traceback."""

import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "ftforge.cli", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("args,expected", [
    (["recipe", "python", "3.12.4"], "series 3.12 has no free-threaded build"),
    (["recipe", "python", "3.13.77"], "does not know the sha256"),
    (["recipe", "python", "banana"], "is not a CPython version"),
    (["build", "/nonexistent/recipe"], "no recipe.yaml here"),
    (["build", ".", "--variant", "freethreading"], "is not KEY=VALUE"),
    (["create", "--prefix", "/tmp/x", "--channel", "/nonexistent/channel", "python"],
     "not a channel"),
])
def test_bad_input_is_one_clear_error(args, expected):
    result = run(*args)
    assert result.returncode == 1, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "hint:" in result.stderr or "KEY=VALUE" in result.stderr


def test_usage_error_exits_2_without_traceback():
    result = run("build", "--no-such-flag")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
