"""benchmarks/bench_pyperformance.py's own helpers: the pinned wheels' extraction and the
loop count carried from the first round to the next."""

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

from ftforge.errors import BenchmarkError

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "pyperf"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_pyperformance", REPO / "benchmarks" / "bench_pyperformance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _wheel(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_only_the_members_under_the_prefix_are_extracted(bench, tmp_path):
    wheel = _wheel(tmp_path / "w.whl", {"pyperf/__init__.py": "x = 1\n",
                                        "pyperf/_runner.py": "y = 2\n",
                                        "pyperf-2.11.0.dist-info/RECORD": ""})
    assert bench._extract(wheel, "pyperf/", tmp_path / "site" / "pyperf") == 2
    assert sorted(p.name for p in (tmp_path / "site" / "pyperf").iterdir()) == \
        ["__init__.py", "_runner.py"]
    assert bench._extract(wheel, "absent/", tmp_path / "none") == 0


def test_a_wheel_member_that_escapes_is_refused(bench, tmp_path):
    wheel = _wheel(tmp_path / "evil.whl", {"pyperf/ok.py": "", "pyperf/../../escaped.py": ""})
    with pytest.raises(BenchmarkError, match="escapes the wheel"):
        bench._extract(wheel, "pyperf/", tmp_path / "site")
    assert not (tmp_path / "site" / "../../escaped.py").resolve().exists()


def test_the_subset_is_fixed_and_pure_python(bench):
    assert len(bench.SUBSET) == 16
    assert bench.SUBSET["pickle_pure_python"] == ("bm_pickle", ("--pure-python", "pickle"))
    assert all(d.startswith("bm_") for d, _ in bench.SUBSET.values())


def test_the_calibrated_loops_are_read_from_run_benchmark_or_file_metadata(bench, tmp_path):
    real = json.loads((GOLDEN / "real-debian-nbody-json_dumps.json").read_text())
    one = tmp_path / "json_dumps.json"
    one.write_text(json.dumps({**real, "benchmarks": real["benchmarks"][1:]}))
    assert bench._loops(one) == 16  # benchmark metadata (pyperf: loops common to the runs)
    top = json.loads(one.read_text())
    top["metadata"]["loops"] = top["benchmarks"][0]["metadata"].pop("loops")
    one.write_text(json.dumps(top))
    assert bench._loops(one) == 16  # file metadata (a file with one benchmark)
    assert bench._loops(GOLDEN / "real-debian-nbody-json_dumps.json") is None  # two benchmarks
    one.write_text("{}")
    with pytest.raises(BenchmarkError, match="json_dumps.json"):
        bench._loops(one)
