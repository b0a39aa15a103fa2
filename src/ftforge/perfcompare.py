"""Interpreters compared on pyperf results: means, ratios, geometric means.

The pure half of ``benchmarks/bench_pyperformance.py``: which interpreters a
run compares (``--interpreter LABEL=PATH``), what a pyperf JSON file says
(format ``1.0``, read as data and checked, never trusted), and the table --
per benchmark the mean of each interpreter, each interpreter against the
baseline (Debian's python3.13, :mod:`ftforge.anchor`) with the geometric mean
over the benchmarks every interpreter finished, and each free-threaded build
against its GIL twin (the single-thread cost of free threading).

A mean is pyperf's ``Benchmark.mean()``: the arithmetic mean of every value of
every run, warmups left out; values are seconds per loop.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BenchmarkError

__all__ = ["BASELINE", "BASELINE_AGAIN", "GIL_GOAL", "Comparison", "InterpreterArg",
           "check_conda_python",
           "compare", "default_pairs", "format_table", "parse_interpreters", "parse_pair",
           "read_pyperf"]

BASELINE = "debian"
"""The label of the anchor interpreter; no ``--interpreter`` may take it."""
BASELINE_AGAIN = "debian-again"
"""The anchor run a second time as if it were another interpreter: its ratio to the
baseline is the run's noise floor (it would be 1.000 on a quiet machine)."""
GIL_GOAL = 1.03
"""Our GIL build's geometric-mean time against the baseline's must not exceed this."""

_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_MAX_PYPERF_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InterpreterArg:
    label: str
    python: Path


def _parse_one(text: str) -> InterpreterArg:
    label, sep, path = text.partition("=")
    if not sep or not path:
        raise BenchmarkError(f"--interpreter {text!r}: expected LABEL=/path/to/env/bin/python",
                             hint="e.g. --interpreter gil-pgo=/opt/envs/gil-pgo/bin/python")
    if not _LABEL.match(label):
        raise BenchmarkError(f"--interpreter {text!r}: label {label!r} is not lower-case "
                             "letters, digits, '.', '_', '-' (at most 40)",
                             hint="e.g. gil-pgo, ft-pgo, gil-o3")
    if label in (BASELINE, BASELINE_AGAIN):
        raise BenchmarkError(f"--interpreter {text!r}: {label!r} is the anchor's own label "
                             "(Debian's python3.13 is always included)",
                             hint="choose another label")
    python = Path(path)
    if not python.is_absolute() or ".." in python.parts:
        raise BenchmarkError(f"--interpreter {text!r}: {path} is not an absolute path",
                             hint="give the environment's bin/python as an absolute path")
    return InterpreterArg(label, python)


def parse_interpreters(texts: Sequence[str]) -> list[InterpreterArg]:
    """``LABEL=PATH`` arguments, in order; labels unique, paths absolute."""
    parsed = [_parse_one(t) for t in texts]
    seen: dict[str, InterpreterArg] = {}
    for arg in parsed:
        if arg.label in seen:
            raise BenchmarkError(f"--interpreter {arg.label}={arg.python}: label {arg.label!r} "
                                 f"is already {seen[arg.label].python}",
                                 hint="give every interpreter its own label")
        seen[arg.label] = arg
    if not parsed:
        raise BenchmarkError("no --interpreter given: there is nothing to compare with Debian's",
                             hint="e.g. --interpreter gil=/path/env/bin/python")
    return parsed


def check_conda_python(arg: InterpreterArg) -> Path:
    """The conda environment ``arg.python`` belongs to (``<prefix>/bin/python*`` with
    ``<prefix>/conda-meta``); the host's own interpreters are refused."""
    python = arg.python
    prefix = python.parent.parent
    if python.parent.name != "bin" or not python.name.startswith("python"):
        raise BenchmarkError(f"--interpreter {arg.label}={python}: not <env>/bin/python*",
                             hint="point at the python of a conda environment (ftforge create)")
    if not (prefix / "conda-meta").is_dir():
        raise BenchmarkError(f"--interpreter {arg.label}={python}: {prefix} has no conda-meta/, "
                             "so it is not a conda environment",
                             hint="only conda environments are compared; the anchor is Debian's "
                             "python3.13, added by the harness itself")
    if not python.is_file():
        raise BenchmarkError(f"--interpreter {arg.label}={python}: no such file",
                             hint=f"is {prefix} a complete environment? (ftforge create)")
    return prefix


def parse_pair(text: str, labels: Sequence[str]) -> tuple[str, str]:
    """``FT:GIL`` -- a free-threaded label and the GIL label it is measured against."""
    ft, sep, gil = text.partition(":")
    if not sep or ft not in labels or gil not in labels or ft == gil:
        raise BenchmarkError(f"--pair {text!r}: expected FT:GIL, two different labels of "
                             f"--interpreter ({', '.join(labels)})",
                             hint="e.g. --pair ft-pgo:gil-pgo")
    return ft, gil


def default_pairs(free_threaded: Mapping[str, bool]) -> list[tuple[str, str]]:
    """Each free-threaded label with its GIL twin: the label with ``ft`` read as ``gil``
    (``ft-pgo`` -> ``gil-pgo``), else the only GIL build given. Baseline excluded."""
    gil = [label for label, ft in free_threaded.items()
           if not ft and label not in (BASELINE, BASELINE_AGAIN)]
    pairs = []
    for label, ft in free_threaded.items():
        if not ft:
            continue
        twin = re.sub(r"(^|[-_.])ft(?=$|[-_.])", r"\1gil", label)
        if twin in gil:
            pairs.append((label, twin))
        elif len(gil) == 1:
            pairs.append((label, gil[0]))
    return pairs


_SECONDS_RANGE = (1e-12, 1e6)
"""A pyperf value is seconds per loop: a picosecond to eleven days is a plausible one."""


def _number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        seconds = float(value)  # an int past float's range (10**400) overflows
    except OverflowError:
        return False
    return math.isfinite(seconds) and _SECONDS_RANGE[0] <= seconds <= _SECONDS_RANGE[1]


def read_pyperf(source: Path) -> dict[str, float]:
    """Mean seconds per loop of each benchmark in a pyperf JSON file (format 1.0)."""
    try:
        if source.stat().st_size > _MAX_PYPERF_BYTES:
            raise BenchmarkError(f"{source}: larger than {_MAX_PYPERF_BYTES} bytes, "
                                 "not a pyperf result", hint="delete it and run again")
        data = json.loads(source.read_text())
    except OSError as exc:
        raise BenchmarkError(f"{source}: unreadable ({exc.strerror})",
                             hint="did the benchmark run? its log is next to it") from None
    except RecursionError:
        raise BenchmarkError(f"{source}: not a pyperf result (nested too deep)",
                             hint="delete it and run again") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{source}: not JSON ({exc})",
                             hint="the benchmark run was cut short: delete the file and run again")\
            from None

    def bad(why: str) -> BenchmarkError:
        return BenchmarkError(f"{source}: not a pyperf 1.0 result: {why}",
                              hint="write it with pyperf (-o/--append) and nothing else")

    if not isinstance(data, dict) or data.get("version") != "1.0":
        raise bad("no version 1.0")
    common = data.get("metadata", {})
    benchmarks = data.get("benchmarks")
    if not isinstance(common, dict) or not isinstance(benchmarks, list) or not benchmarks:
        raise bad("no benchmarks")
    means: dict[str, float] = {}
    for bench in benchmarks:
        if not isinstance(bench, dict):
            raise bad("a benchmark is not an object")
        metadata = bench.get("metadata", {})
        if not isinstance(metadata, dict):
            raise bad("a benchmark's metadata is not an object")
        name = metadata.get("name", common.get("name"))
        if not isinstance(name, str) or not _LABEL.match(name.lower()):
            raise bad(f"benchmark name {name!r}")
        if name in means:
            raise bad(f"benchmark {name} twice")
        runs = bench.get("runs")
        if not isinstance(runs, list):
            raise bad(f"{name}: no runs")
        values: list[float] = []
        for run in runs:
            if not isinstance(run, dict):
                raise bad(f"{name}: a run is not an object")
            run_values = run.get("values", [])  # calibration runs have warmups only
            if not isinstance(run_values, list) or not all(_number(v) for v in run_values):
                raise bad(f"{name}: values must be seconds between 1e-12 and 1e6")
            values += run_values
        if not values:
            raise bad(f"{name}: no values (every run was a calibration or warmup)")
        means[name] = statistics.mean(values)
    return means


@dataclass
class Comparison:
    baseline: str
    labels: list[str]
    """Every interpreter, baseline first."""
    means: dict[str, dict[str, float]]
    benchmarks: list[str]
    """The benchmarks every interpreter finished: the geometric means are over these."""
    missing: dict[str, list[str]]
    """Per label, the benchmarks it did not finish (left out of the geometric means)."""
    vs_baseline: dict[str, dict[str, float]]
    geomean_vs_baseline: dict[str, float]
    pairs: list[tuple[str, str]]
    ft_vs_gil: dict[str, dict[str, float]] = field(default_factory=dict)
    """``"FT/GIL"`` -> per benchmark, time of FT over time of GIL."""
    geomean_ft_vs_gil: dict[str, float] = field(default_factory=dict)

    @property
    def noise_floor(self) -> float | None:
        """The anchor's geometric-mean time over its own, when it ran twice."""
        return self.geomean_vs_baseline.get(BASELINE_AGAIN)

    def to_json(self) -> dict:
        return {
            "baseline": self.baseline,
            "labels": self.labels,
            "benchmarks": self.benchmarks,
            "missing": self.missing,
            "mean_seconds": self.means,
            "ratio_vs_baseline": self.vs_baseline,
            "geomean_ratio_vs_baseline": self.geomean_vs_baseline,
            "ft_vs_gil": self.ft_vs_gil,
            "geomean_ft_vs_gil": self.geomean_ft_vs_gil,
            "noise_floor": self.noise_floor,
            "ratio_meaning": "time of the interpreter / time of the reference; < 1 is faster",
        }


def _ratios(num: Mapping[str, float], den: Mapping[str, float],
            names: Sequence[str]) -> dict[str, float]:
    return {name: num[name] / den[name] for name in names}


def compare(means: Mapping[str, Mapping[str, float]], *, baseline: str = BASELINE,
            pairs: Sequence[tuple[str, str]] = ()) -> Comparison:
    """Ratios of every interpreter's means to the baseline's, and of each (FT, GIL) pair."""
    if baseline not in means:
        raise BenchmarkError(f"no results for the baseline {baseline!r}",
                             hint="the anchor interpreter must run every benchmark")
    labels = [baseline, *(label for label in means if label != baseline)]
    every = sorted(set().union(*(set(m) for m in means.values())))
    common = [name for name in every if all(name in means[label] for label in labels)]
    if not common:
        raise BenchmarkError("no benchmark finished on every interpreter, nothing to compare",
                             hint="read the per-benchmark logs next to the results")
    missing = {label: [n for n in every if n not in means[label]] for label in labels}
    vs = {label: _ratios(means[label], means[baseline], common) for label in labels[1:]}
    result = Comparison(
        baseline=baseline, labels=labels,
        means={label: {n: means[label][n] for n in every if n in means[label]} for label in labels},
        benchmarks=common, missing={k: v for k, v in missing.items() if v},
        vs_baseline=vs,
        geomean_vs_baseline={label: statistics.geometric_mean(r.values())
                             for label, r in vs.items()},
        pairs=list(pairs))
    for ft, gil in pairs:
        for label in (ft, gil):
            if label not in means:
                raise BenchmarkError(f"pair {ft}:{gil}: no results for {label!r}",
                                     hint="pair labels given with --interpreter")
        key = f"{ft}/{gil}"
        result.ft_vs_gil[key] = _ratios(means[ft], means[gil], common)
        result.geomean_ft_vs_gil[key] = statistics.geometric_mean(result.ft_vs_gil[key].values())
    return result


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms >= 1 else f"{ms:.4f}"  # json_loads is ~0.02 ms


def format_table(c: Comparison, *, gil_labels: Sequence[str] = ()) -> str:
    """A plain-text table: means in ms, ratios against the baseline and FT/GIL."""
    others = c.labels[1:]
    pair_keys = list(c.ft_vs_gil)
    head = ["benchmark", *(f"{label} ms" for label in c.labels),
            *(f"{label}/{c.baseline}" for label in others), *pair_keys]
    rows = []
    for name in sorted(set().union(*(set(m) for m in c.means.values()))):
        row = [name if name in c.benchmarks else f"{name} (left out)"]
        row += [_ms(c.means[label][name]) if name in c.means[label] else "-" for label in c.labels]
        row += [f"{c.vs_baseline[label][name]:.3f}" if name in c.benchmarks else "-"
                for label in others]
        row += [f"{c.ft_vs_gil[key][name]:.3f}" if name in c.benchmarks else "-"
                for key in pair_keys]
        rows.append(row)
    rows.append([f"geometric mean ({len(c.benchmarks)})", *([""] * len(c.labels)),
                 *(f"{c.geomean_vs_baseline[label]:.3f}" for label in others),
                 *(f"{c.geomean_ft_vs_gil[key]:.3f}" for key in pair_keys)])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(cell).rjust(w) if i else str(cell).ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for label in gil_labels:
        ratio = c.geomean_vs_baseline.get(label)
        if ratio is not None:
            verdict = "within" if ratio <= GIL_GOAL else "NOT within"
            lines.append(f"{label}: {ratio:.3f}x {c.baseline}'s time, {verdict} the "
                         f"{(GIL_GOAL - 1) * 100:.0f}% goal")
    if c.noise_floor is not None:
        lines.append(f"noise floor: {BASELINE_AGAIN} (the same interpreter) "
                     f"{c.noise_floor:.3f}x {c.baseline}'s time")
    return "\n".join(lines)
