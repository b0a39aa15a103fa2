"""The workload helpers run real interpreters (this one; the suite's builds are in
tests/integration): outcomes, not timings."""

import sys
from pathlib import Path

import pytest

from ftforge.workload import measure, process_ceiling, python_runs_in_two_threads_at_once


def test_measure_reports_this_interpreters_gil_state():
    scaling = measure(Path(sys.executable), iterations=20_000, repeats=1)
    assert scaling.version == sys.version.split()[0]
    assert scaling.gil_enabled is (getattr(sys, "_is_gil_enabled", lambda: True)())
    assert scaling.one_thread_s > 0 and scaling.two_threads_s > 0


def test_process_ceiling_is_a_ratio_of_two_real_runs():
    assert process_ceiling(Path(sys.executable), iterations=20_000, repeats=1) > 0


def test_process_ceiling_refuses_an_interpreter_that_fails(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 1.0\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeError, match="the workload failed"):
        process_ceiling(broken, iterations=10, repeats=1)


@pytest.mark.skipif(getattr(sys, "_is_gil_enabled", lambda: True)() is False,
                    reason="this check is about a GIL interpreter")
def test_a_gil_interpreter_never_runs_two_threads_at_once():
    assert python_runs_in_two_threads_at_once(Path(sys.executable), rounds=5,
                                              deadline_s=2.0) is False
