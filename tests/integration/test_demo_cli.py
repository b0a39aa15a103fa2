"""`ftforge demo` end to end (reuses the cached free-threaded build)."""

import re

import pytest

from ftforge.recipes import python as python_recipe

from .conftest import ftforge

pytestmark = pytest.mark.integration


def test_demo_prints_build_string_gil_state_and_speedup(tmp_path, interpreter_packages):
    out = ftforge("demo", "--work-dir", str(tmp_path / "demo"), "--iterations", "1000000")
    text = out.stdout
    assert "from cache" in text
    assert re.search(r"python-freethreading +│ python 3\.13\.5 h[0-9a-f]+_0_cp313t", text), text
    # Plain `python` from the demo's channel is the GIL build (build number raised by 100).
    assert re.search(r"plain `python` +│ 3\.13\.5 h[0-9a-f]+_100_cp313 \(the GIL build\)", text), text
    assert re.search(r"pip +│ 26\.3 pyh[0-9a-f]+_0", text), text
    pinned = (tmp_path / "demo" / "env" / "conda-meta" / "pinned").read_text()
    assert pinned == "python_abi 3.13.* *_cp313t\n"
    assert re.search(r"sys\._is_gil_enabled\(\) +│ False", text), text
    assert re.search(rf"interpreter optimization +│ {python_recipe.DEFAULT_OPTIMIZATION} ",
                     text), text
    assert "2-thread speedup" in text
    assert (tmp_path / "demo" / "env" / "bin" / "python").exists()
