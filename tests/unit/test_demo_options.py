"""`ftforge demo --optimization`: checked before anything is written or built."""

import subprocess
import sys

from ftforge.recipes import python as python_recipe


def test_demo_refuses_an_unknown_optimization_in_one_line_and_writes_nothing(tmp_path):
    work = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "demo", "--work-dir", str(work),
                             "--optimization", "fast[red]"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "unknown interpreter optimization 'fast[red]'" in result.stderr  # markup escaped
    assert ", ".join(python_recipe.OPTIMIZATIONS) in result.stderr
    assert "Traceback" not in result.stderr
    assert not work.exists()


def test_demo_defaults_to_the_published_optimization():
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "demo", "--help"],
                            capture_output=True, text=True, check=True)
    assert f"[default: {python_recipe.DEFAULT_OPTIMIZATION}]" in result.stdout
