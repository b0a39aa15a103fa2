"""Build requirements an sdist's backend only names when asked (PEP 517
``get_requires_for_build_wheel``), found by asking it.

Static inspection reads ``[build-system] requires``; an in-tree backend
wrapper (frozenlist's and propcache's ``pep517_backend``, for example) adds
Cython only from the hook. ftforge runs the hook the way pip's build isolation
does: the sdist unpacked, a throw-away virtualenv with the static
requirements from PyPI, and pypa's ``pyproject_hooks`` calling the backend in
that environment. Results are cached per sdist file under
``~/.cache/ftforge/pep517``. This runs the sdist's backend code, as any build
of it does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

from .. import paths
from .sdist import SdistError, SdistFacts, requirement_name

__all__ = ["dynamic_build_requires"]


def _unpack(sdist: Path, into: Path) -> Path:
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            archive.extractall(into)
    else:
        with tarfile.open(sdist) as archive:
            archive.extractall(into, filter="data")  # refuses links/paths leaving `into`
    roots = [p for p in into.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise SdistError(f"{sdist.name}: expected one top-level directory in the sdist")
    return roots[0]


def _ask_backend(sdist: Path, static: tuple[str, ...]) -> list[str]:
    from pyproject_hooks import BuildBackendHookCaller, quiet_subprocess_runner

    with tempfile.TemporaryDirectory(prefix="ftforge-pep517-") as tmp:
        source = _unpack(sdist, Path(tmp) / "src")
        system = tomllib.loads((source / "pyproject.toml").read_text()).get("build-system", {})
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True)
        python = venv / "bin" / "python"
        install = subprocess.run([str(python), "-m", "pip", "install", "-q",
                                  "--disable-pip-version-check", *static],
                                 capture_output=True, text=True, check=False)
        if install.returncode != 0:
            raise SdistError(
                f"{sdist.name}: could not install its build requirements "
                f"({' '.join(static)}) to ask its backend: {install.stderr.strip()[-300:]}",
                hint="check that PyPI is reachable")
        caller = BuildBackendHookCaller(
            str(source), system["build-backend"], backend_path=system.get("backend-path"),
            python_executable=str(python), runner=quiet_subprocess_runner)
        try:
            return list(caller.get_requires_for_build_wheel())
        except Exception as exc:  # the backend's own error, whatever its type
            raise SdistError(f"{sdist.name}: its build backend failed when asked for build "
                             f"requirements: {exc}") from None


def dynamic_build_requires(sdist: Path, facts: SdistFacts) -> tuple[str, ...]:
    """Requirements the backend adds beyond ``[build-system] requires`` (in-tree
    backend wrappers only; a known backend's additions are known)."""
    if facts.backend_wrapper is None:
        return ()
    cache = paths.cache_root() / "pep517" / f"{sdist.name}.json"
    if cache.exists():
        asked = json.loads(cache.read_text())
    else:
        asked = _ask_backend(sdist, facts.build_requires)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asked))
    static = {requirement_name(r) for r in facts.build_requires}
    if facts.backend == "setuptools":
        # Wrappers around setuptools pass on its legacy "wheel" answer; setuptools >= 70.1
        # ships bdist_wheel itself, so it is no build requirement.
        static.add("wheel")
    return tuple(r for r in asked if requirement_name(r) not in static)
