"""`ftforge demo` end to end (reuses the cached free-threaded build)."""

import pytest

from .conftest import ftforge

pytestmark = pytest.mark.integration


def test_demo_prints_build_string_gil_state_and_speedup(tmp_path, interpreter_packages):
    out = ftforge("demo", "--work-dir", str(tmp_path / "demo"), "--iterations", "1000000")
    text = out.stdout
    assert "from cache" in text
    assert "_0_cp313t" in text
    assert "sys._is_gil_enabled() │ False" in text
    assert "2-thread speedup" in text
    assert (tmp_path / "demo" / "env" / "bin" / "python").exists()
