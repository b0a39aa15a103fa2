"""The pure half of benchmarks/bench_pyperformance.py: --interpreter, pyperf JSON, the table.

golden/pyperf/{debian,gil,ft}.json were written by pyperf 2.11.0's own API
(``pyperf.Run``/``Benchmark``/``BenchmarkSuite.dump``) with chosen values, each
benchmark with a calibration run (warmups only) and warmups that must not count;
golden/pyperf/real-debian-nbody-json_dumps.json is a real run of the harness
(Debian's python3.13, nbody and json_dumps), whose means pyperf's
``Benchmark.mean()`` gave as the numbers asserted below.
"""

import json
import math
from pathlib import Path

import pytest

from ftforge.errors import BenchmarkError
from ftforge.perfcompare import (
    BASELINE,
    BASELINE_AGAIN,
    InterpreterArg,
    check_conda_python,
    compare,
    default_pairs,
    format_table,
    parse_interpreters,
    parse_pair,
    read_pyperf,
)

GOLDEN = Path(__file__).parent / "golden" / "pyperf"


def test_interpreters_are_label_path_pairs_in_order():
    parsed = parse_interpreters(["gil-pgo=/envs/gil/bin/python", "ft-pgo=/envs/ft/bin/python3.13t"])
    assert parsed == [InterpreterArg("gil-pgo", Path("/envs/gil/bin/python")),
                      InterpreterArg("ft-pgo", Path("/envs/ft/bin/python3.13t"))]


@pytest.mark.parametrize("args, words", [
    ([], "no --interpreter"),
    (["gil-pgo"], "expected LABEL=/path"),
    (["gil-pgo="], "expected LABEL=/path"),
    (["=/envs/gil/bin/python"], "label ''"),
    (["GIL PGO=/envs/gil/bin/python"], "label 'GIL PGO'"),
    (["debian=/envs/gil/bin/python"], "anchor's own label"),
    (["debian-again=/envs/gil/bin/python"], "anchor's own label"),
    (["gil=envs/gil/bin/python"], "not an absolute path"),
    (["gil=/envs/../usr/bin/python3"], "not an absolute path"),
    (["gil=/envs/a/bin/python", "gil=/envs/b/bin/python"], "already /envs/a/bin/python"),
])
def test_bad_interpreter_arguments_are_refused_with_the_argument_named(args, words):
    with pytest.raises(BenchmarkError, match="interpreter") as caught:
        parse_interpreters(args)
    assert words in caught.value.message


def _env(tmp_path: Path, name: str = "env", conda: bool = True) -> Path:
    (tmp_path / name / "bin").mkdir(parents=True)
    (tmp_path / name / "bin" / "python").write_text("")
    if conda:
        (tmp_path / name / "conda-meta").mkdir()
    return tmp_path / name / "bin" / "python"


def test_only_a_conda_environments_python_is_accepted(tmp_path):
    python = _env(tmp_path)
    assert check_conda_python(InterpreterArg("gil", python)) == tmp_path / "env"
    host = _env(tmp_path, "usr", conda=False)
    with pytest.raises(BenchmarkError, match="no conda-meta/"):
        check_conda_python(InterpreterArg("host", host))
    with pytest.raises(BenchmarkError, match="not <env>/bin/python"):
        check_conda_python(InterpreterArg("gil", tmp_path / "env" / "conda-meta"))
    (tmp_path / "env" / "bin" / "python").unlink()
    with pytest.raises(BenchmarkError, match="no such file"):
        check_conda_python(InterpreterArg("gil", python))


def test_means_leave_out_warmups_and_calibration_runs():
    assert read_pyperf(GOLDEN / "debian.json") == pytest.approx(
        {"nbody": 0.100, "json_dumps": 0.010, "float": 0.050}, rel=1e-12)
    assert read_pyperf(GOLDEN / "ft.json") == pytest.approx(
        {"nbody": 0.21, "json_dumps": 0.0147}, rel=1e-12)


def test_means_of_a_real_run_are_pyperfs_own():
    assert read_pyperf(GOLDEN / "real-debian-nbody-json_dumps.json") == pytest.approx(
        {"nbody": 0.12588348549979855, "json_dumps": 0.011134130260415986}, rel=1e-12)


def _mutated(tmp_path, change) -> Path:
    data = json.loads((GOLDEN / "gil.json").read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _set_value(value):
    def change(data):
        data["benchmarks"][0]["runs"][1]["values"][0] = value
    return change


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(version="2.0"), "no version 1.0"),
    (lambda d: d.update(benchmarks=[]), "no benchmarks"),
    (lambda d: d["benchmarks"].append(d["benchmarks"][0]), "benchmark nbody twice"),
    (lambda d: d["benchmarks"][0]["metadata"].update(name="../../etc"), "benchmark name"),
    (lambda d: d["benchmarks"][0]["metadata"].pop("name"), "benchmark name None"),
    (lambda d: d["benchmarks"][0].update(runs=d["benchmarks"][0]["runs"][:1]), "no values"),
    (lambda d: d["benchmarks"][0].update(runs="many"), "no runs"),
    (_set_value(-0.1), "seconds between"),
    (_set_value(0), "seconds between"),
    (_set_value(True), "seconds between"),
    (_set_value("0.1"), "seconds between"),
    (_set_value(float("nan")), "seconds between"),
    (_set_value(float("inf")), "seconds between"),
    (_set_value(10**400), "seconds between"),  # past float's range: no OverflowError
    (_set_value(5e-324), "seconds between"),  # a subnormal would blow up the geometric mean
    (_set_value(1e308), "seconds between"),
])
def test_a_malformed_pyperf_file_is_refused_naming_it(tmp_path, change, words):
    path = _mutated(tmp_path, change)
    with pytest.raises(BenchmarkError) as caught:
        read_pyperf(path)
    assert str(path) in caught.value.message and words in caught.value.message


def test_a_deeply_nested_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"version": "1.0", "benchmarks": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    with pytest.raises(BenchmarkError, match="nested too deep") as caught:
        read_pyperf(path)
    assert str(path) in caught.value.message


def test_a_truncated_or_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text((GOLDEN / "gil.json").read_text()[:100])
    with pytest.raises(BenchmarkError, match="not JSON"):
        read_pyperf(path)
    with pytest.raises(BenchmarkError, match="unreadable"):
        read_pyperf(tmp_path / "absent.json")


def _golden_means():
    return {BASELINE: read_pyperf(GOLDEN / "debian.json"), "gil": read_pyperf(GOLDEN / "gil.json"),
            "ft": read_pyperf(GOLDEN / "ft.json")}


def test_ratios_and_geometric_means_over_the_benchmarks_every_interpreter_finished():
    c = compare(_golden_means(), pairs=[("ft", "gil")])
    assert c.labels == [BASELINE, "gil", "ft"]
    assert c.benchmarks == ["json_dumps", "nbody"]
    assert c.missing == {"ft": ["float"]}
    assert c.vs_baseline["gil"] == pytest.approx({"nbody": 1.05, "json_dumps": 0.98})
    assert c.vs_baseline["ft"] == pytest.approx({"nbody": 2.1, "json_dumps": 1.47})
    assert c.geomean_vs_baseline["gil"] == pytest.approx(math.sqrt(1.05 * 0.98))
    assert c.geomean_vs_baseline["ft"] == pytest.approx(math.sqrt(2.1 * 1.47))
    assert c.ft_vs_gil["ft/gil"] == pytest.approx({"nbody": 2.0, "json_dumps": 1.5})
    assert c.geomean_ft_vs_gil["ft/gil"] == pytest.approx(math.sqrt(3.0))
    assert c.means["gil"]["float"] == pytest.approx(0.051)  # kept in the table, out of the mean
    out = c.to_json()
    assert json.loads(json.dumps(out))["geomean_ratio_vs_baseline"]["gil"] == \
        pytest.approx(math.sqrt(1.05 * 0.98))


def test_without_the_baseline_or_a_common_benchmark_there_is_no_comparison():
    means = _golden_means()
    with pytest.raises(BenchmarkError, match="baseline"):
        compare({"gil": means["gil"]})
    with pytest.raises(BenchmarkError, match="no benchmark finished on every"):
        compare({BASELINE: {"float": 0.05}, "ft": {"nbody": 0.2}})
    with pytest.raises(BenchmarkError, match="no results for 'ft2'"):
        compare(means, pairs=[("ft2", "gil")])


def test_the_table_shows_means_ratios_left_out_rows_and_the_goal_verdict():
    text = format_table(compare(_golden_means(), pairs=[("ft", "gil")]), gil_labels=["gil"])
    lines = text.splitlines()
    assert lines[0].split() == ["benchmark", "debian", "ms", "gil", "ms", "ft", "ms",
                                "gil/debian", "ft/debian", "ft/gil"]
    nbody = next(line for line in lines if line.startswith("nbody"))
    assert nbody.split() == ["nbody", "100.00", "105.00", "210.00", "1.050", "2.100", "2.000"]
    float_row = next(line for line in lines if line.startswith("float (left out)"))
    assert float_row.split()[3:] == ["50.00", "51.00", "-", "-", "-", "-"]
    geo = next(line for line in lines if line.startswith("geometric mean (2)"))
    assert geo.split()[-3:] == [f"{math.sqrt(1.05 * 0.98):.3f}", f"{math.sqrt(2.1 * 1.47):.3f}",
                                f"{math.sqrt(3):.3f}"]
    assert lines[-1] == "gil: 1.014x debian's time, within the 3% goal"
    tiny = compare({BASELINE: {"json_loads": 2.36e-5}, "gil": {"json_loads": 3.48e-5}})
    assert format_table(tiny).splitlines()[2].split()[:3] == ["json_loads", "0.0236", "0.0348"]
    slow = _golden_means()
    slow["gil"] = {k: v * 1.04 for k, v in slow[BASELINE].items()}
    assert format_table(compare(slow), gil_labels=["gil"]).splitlines()[-1] == \
        "gil: 1.040x debian's time, NOT within the 3% goal"
    assert compare(slow).noise_floor is None


def test_the_anchor_against_itself_is_the_noise_floor():
    means = _golden_means()
    means[BASELINE_AGAIN] = {k: v * 1.05 for k, v in means[BASELINE].items()}
    c = compare(means, pairs=[("ft", "gil")])
    assert c.noise_floor == pytest.approx(1.05)
    assert c.to_json()["noise_floor"] == pytest.approx(1.05)
    lines = format_table(c, gil_labels=["gil"]).splitlines()
    assert lines[-2:] == ["gil: 1.014x debian's time, within the 3% goal",
                          "noise floor: debian-again (the same interpreter) 1.050x debian's time"]


def test_free_threaded_builds_pair_with_their_gil_twin():
    kinds = {BASELINE: False, "gil-pgo": False, "ft-pgo": True, "gil-o3": False, "ft-o3": True}
    assert default_pairs(kinds) == [("ft-pgo", "gil-pgo"), ("ft-o3", "gil-o3")]
    assert default_pairs({BASELINE: False, "ours": False, "nogil": True}) == [("nogil", "ours")]
    assert default_pairs({BASELINE: False, "a": False, "b": False, "shift": True}) == []
    assert default_pairs({BASELINE: False, "ft": True}) == []  # the baseline is no twin
    assert default_pairs({BASELINE: False, BASELINE_AGAIN: False, "gil": False, "ft": True}) \
        == [("ft", "gil")]  # nor is its repeat
    assert parse_pair("ft-o3:gil-pgo", list(kinds)) == ("ft-o3", "gil-pgo")
    for bad in ("ft-o3", "ft-o3:nope", "ft-o3:ft-o3", ":gil-o3"):
        with pytest.raises(BenchmarkError, match="--pair"):
            parse_pair(bad, list(kinds))
