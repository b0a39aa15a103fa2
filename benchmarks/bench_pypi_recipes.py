"""How many popular C-extension packages ftforge turns into working free-threaded
packages, next to what `grayskull pypi` produces for the same list.

For each package in benchmarks/pypi_packages.txt:
  ftforge    `recipe pypi --with-deps`, build the closure for cp313t (recipe tests
             on: import, pip check, GIL check), install into a fresh environment,
             import every top-level module, check sys._is_gil_enabled() is False.
  grayskull  `grayskull pypi NAME` (installed into this benchmark's own venv),
             its recipe built the same way, as-is (rattler-build reads v1 only:
             a meta.yaml it cannot read counts as a failure, with the reason).
Reports both fractions and the time per package.

    .venv/bin/python benchmarks/bench_pypi_recipes.py --channel CHANNEL [--limit N]

CHANNEL must hold the interpreter (e.g. the channel `ftforge demo` publishes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from ftforge.build.driver import BuildRequest, build_in_order
from ftforge.environments import create
from ftforge.errors import FtforgeError
from ftforge.recipes import files as recipe_files
from ftforge.recipes.from_pypi import closure_from_pypi
from ftforge.variants import PythonVariant

REPO = Path(__file__).resolve().parents[1]
FT = PythonVariant.ft()


def packages(limit: int | None) -> list[str]:
    lines = (REPO / "benchmarks" / "pypi_packages.txt").read_text().splitlines()
    specs = [l.strip() for l in lines if l.strip() and not l.startswith("#")]
    return specs[:limit] if limit else specs


def ftforge_one(spec: str, work: Path, channel: str) -> dict:
    started = time.monotonic()
    out = work / "out"
    try:
        planned = closure_from_pypi(spec)
        dirs = []
        for plan, files in planned:
            recipe_files.write_files(work / "recipes" / plan.conda_name, files)
            dirs.append(work / "recipes" / plan.conda_name)
        build_in_order([BuildRequest(d, out, overrides=(("python", FT.python_spec),),
                                     variant_files=(REPO / "conda_build_config.yaml",),
                                     channels=(channel,)) for d in dirs])
        root = planned[-1][0]
        prefix = work / "env"
        create(prefix, [channel, str(out)], [FT.metapackage, root.conda_name], force=True)
        imports = _imports(planned[-1][1]["recipe.yaml"])
        code = f"import sys; import {', '.join(imports)}; assert not sys._is_gil_enabled()"
        subprocess.run([str(prefix / "bin" / "python"), "-c", code], check=True,
                       capture_output=True, text=True)
        return {"ok": True, "seconds": time.monotonic() - started}
    except (FtforgeError, subprocess.CalledProcessError) as exc:
        reason = getattr(exc, "message", None) or (exc.stderr or str(exc)).strip()
        return {"ok": False, "seconds": time.monotonic() - started, "reason": _telling(reason)}


def _telling(message: str) -> str:
    """The line of a failure that says why (a compiler error, the GIL check, ...)."""
    lines = [l.strip() for l in message.splitlines() if l.strip()]
    for pattern in ("ftforge_gil_check: FAILED", "#error", "error:", "Error:", "is not installed"):
        for line in lines:
            if pattern in line:
                return line[:240]
    return lines[0][:240] if lines else "unknown"


def _imports(recipe_text: str) -> list[str]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(recipe_text)
    return data["tests"][0]["python"]["imports"]


def grayskull_env(work: Path) -> Path:
    env = work / "grayskull-venv"
    venv.create(env, with_pip=True)
    subprocess.run([str(env / "bin" / "pip"), "install", "-q", "grayskull"], check=True)
    return env / "bin" / "grayskull"


def grayskull_one(grayskull: Path, spec: str, work: Path, channel: str) -> dict:
    started = time.monotonic()
    name = spec.split("==")[0]
    out_dir = work / "grayskull"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(grayskull), "pypi", "--strict-conda-forge", spec, "-o",
                             str(out_dir)], capture_output=True, text=True, timeout=600)
    recipe = next(iter(out_dir.glob(f"{name}*/recipe.yaml")), None)
    if result.returncode != 0 or recipe is None:
        meta = next(iter(out_dir.glob(f"{name}*/meta.yaml")), None)
        reason = ("wrote meta.yaml, which rattler-build cannot build" if meta else
                  (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no recipe"])
        return {"ok": False, "seconds": time.monotonic() - started,
                "reason": reason if isinstance(reason, str) else reason[0][:200]}
    try:
        build_in_order([BuildRequest(recipe.parent, work / "grayskull-out",
                                     overrides=(("python", FT.python_spec),),
                                     variant_files=(REPO / "conda_build_config.yaml",),
                                     channels=(channel,))])
        return {"ok": True, "seconds": time.monotonic() - started}
    except FtforgeError as exc:
        return {"ok": False, "seconds": time.monotonic() - started,
                "reason": exc.message.splitlines()[0][:200]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--channel", required=True, help="channel holding the interpreter")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--skip-grayskull", action="store_true")
    parser.add_argument("--only", nargs="+", help="run these packages of the list only")
    args = parser.parse_args()
    specs = packages(args.limit)
    if args.only:
        specs = [s for s in specs if s in args.only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftforge-bench-pypi-") as tmp:
        work = Path(tmp)
        grayskull = None if args.skip_grayskull else grayskull_env(work)
        for spec in specs:
            row = {"package": spec, "ftforge": ftforge_one(spec, work / "ft" / spec, args.channel)}
            if grayskull:
                row["grayskull"] = grayskull_one(grayskull, spec, work / "gs" / spec, args.channel)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(work / "ft" / spec / "env", ignore_errors=True)
    summary = {"packages": len(rows)}
    for tool in ("ftforge", "grayskull"):
        done = [r[tool] for r in rows if tool in r]
        if done:
            ok = sum(1 for r in done if r["ok"])
            summary[tool] = {"ok": ok, "fraction": round(ok / len(done), 3),
                             "seconds_per_package": round(sum(r["seconds"] for r in done)
                                                          / len(done), 1)}
    print(json.dumps(summary, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / ("pypi_recipes_subset.json" if args.only else "pypi_recipes.json")).write_text(json.dumps({"rows": rows, "summary": summary},
                                                      indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
