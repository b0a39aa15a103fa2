"""Build requirements an sdist's backend only names when asked (PEP 517
``get_requires_for_build_wheel``), found by asking it -- inside a sandbox.

Static inspection reads ``[build-system] requires``; an in-tree backend
wrapper (frozenlist's and propcache's ``pep517_backend``, for example) adds
Cython only from the hook. That hook is the sdist's own code, so ftforge
runs it the way pip's build isolation does *and* confined:

1. the sdist is unpacked (tar ``data`` filter; member count and size bounded
   by :class:`ftforge.limits.SourceLimits`) into a scratch directory;
2. a throw-away virtualenv gets the static requirements from PyPI as wheels
   only (``--only-binary :all:``: installing them runs no code);
3. pypa's ``pyproject_hooks`` calls the backend through :mod:`ftforge.sandbox`
   (bubblewrap: no network, no home, a clean environment, no capabilities,
   time and memory limits; only the unpacked sdist and the hook's scratch
   directory writable). Without bubblewrap the hook is not run at all.

The answer is untrusted too: each requirement must parse as a PEP 508
requirement on one line. Results are cached per sdist content (sha256) under
``~/.cache/ftforge/pep517``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import tomllib
import zipfile
from pathlib import Path

from .. import paths, sandbox
from ..build.mirror import sha256_of
from ..errors import FtforgeError
from ..limits import SourceLimits
from .sdist import SdistError, SdistFacts, requirement_name

__all__ = ["dynamic_build_requires"]

_MAX_ANSWER_BYTES = 1 << 20


def _unpack(sdist: Path, into: Path, limits: SourceLimits) -> Path:
    """Unpack into ``into`` (nothing outside it; sizes bounded); the one top-level folder."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as archive:
                infos = archive.infolist()
                _check_size(sdist, len(infos), sum(i.file_size for i in infos), limits)
                archive.extractall(into)  # zipfile drops absolute and '..' parts
        else:
            with tarfile.open(sdist) as archive:
                members = archive.getmembers()
                _check_size(sdist, len(members), sum(max(m.size, 0) for m in members), limits)
                archive.extractall(into, filter="data")  # refuses links/paths leaving `into`
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise SdistError(f"{sdist.name}: cannot be unpacked safely ({exc})",
                         hint="the sdist is malformed or hostile; nothing ran") from None
    roots = [p for p in into.iterdir() if p.is_dir() and not p.is_symlink()]
    if len(roots) != 1:
        raise SdistError(f"{sdist.name}: expected one top-level directory in the sdist")
    return roots[0]


def _check_size(sdist: Path, members: int, size: int, limits: SourceLimits) -> None:
    if members > limits.max_members:
        raise SdistError(f"{sdist.name}: more than {limits.max_members} members "
                         "(SourceLimits.max_members)", hint="refused; nothing was unpacked")
    if size > limits.max_unpacked_bytes:
        raise SdistError(f"{sdist.name}: unpacks to more than {limits.max_unpacked_bytes} bytes "
                         "(SourceLimits.max_unpacked_bytes)", hint="refused; nothing was unpacked")


def _sandboxed_runner(sdist: Path, source: Path, venv: Path, limits: SourceLimits):
    """A ``pyproject_hooks`` runner that runs the hook through :func:`sandbox.run`."""
    def runner(cmd, cwd=None, extra_environ=None):
        # cmd: [python, .../_in_process.py, hook, control dir]; the script is bound
        # at a neutral path so that nothing of this project's tree is visible inside.
        python, script, hook, control = cmd[0], Path(cmd[1]), cmd[2], Path(cmd[3])
        inside = f"/opt/pyproject-hooks/{script.name}"
        sandbox.run([python, inside, hook, str(control)],
                    what=f"{sdist.name}: its build backend (get_requires_for_build_wheel)",
                    cwd=Path(cwd or source), readable=[venv, (script, inside)],
                    writable=[source, control], env=dict(extra_environ or {}), limits=limits)
        # pyproject_hooks reads control/output.json next: read the hook's file without
        # trusting it (a FIFO would block forever, a symlink could point anywhere) and put
        # back a plain copy of what was read.
        answer = control / "output.json"
        what = f"{sdist.name}: its build backend"
        data = sandbox.read_written(answer, what=what, max_bytes=_MAX_ANSWER_BYTES)
        if data is None:
            raise SdistError(f"{what} wrote no answer", hint="the backend is broken or hostile")
        answer.unlink()
        with open(answer, "xb") as out:  # exclusive: the sandbox has exited; nothing races
            out.write(data)
    return runner


def _ask_backend(sdist: Path, static: tuple[str, ...], limits: SourceLimits) -> list[str]:
    from pyproject_hooks import BuildBackendHookCaller

    sandbox.require()  # no sandbox, no backend code: fail before any work
    requirements = _index_requirements(sdist, static)
    with _exit_on_terminate(), tempfile.TemporaryDirectory(prefix="ftforge-pep517-") as tmp:
        source = _unpack(sdist, Path(tmp) / "src", limits)
        try:
            text = (source / "pyproject.toml").read_text()
            system = tomllib.loads(text).get("build-system", {})
        except (OSError, ValueError, RecursionError) as exc:
            raise SdistError(f"{sdist.name}: pyproject.toml cannot be read ({exc})") from None
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", *(() if static else ("--without-pip",)),
                        str(venv)], check=True, capture_output=True)
        python = venv / "bin" / "python"
        install = subprocess.run([str(python), "-m", "pip", "install", "-q",
                                  "--disable-pip-version-check", "--only-binary", ":all:",
                                  "--", *requirements],
                                 capture_output=True, text=True, check=False) if static else None
        if install is not None and install.returncode != 0:
            raise SdistError(
                f"{sdist.name}: could not install its build requirements "
                f"({' '.join(static)}) as wheels to ask its backend: "
                f"{install.stderr.strip()[-300:]}",
                hint="check that PyPI is reachable; requirements without wheels are not "
                "built here (that would run their code outside the sandbox)")
        caller = BuildBackendHookCaller(
            str(source), system["build-backend"], backend_path=system.get("backend-path"),
            python_executable=str(python),
            runner=_sandboxed_runner(sdist, source, venv, limits))
        try:
            return _checked_answer(sdist, caller.get_requires_for_build_wheel())
        except FtforgeError:  # refused answers, sandbox failures, bubblewrap missing
            raise
        except Exception as exc:  # the backend's own error, whatever its type
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
            raise SdistError(f"{sdist.name}: its build backend failed when asked for build "
                             f"requirements: {first}") from None


@contextlib.contextmanager
def _exit_on_terminate():
    """SIGTERM/SIGHUP (``timeout``, a closed terminal) become SystemExit while the
    scratch directory exists, so it is removed and the sandbox killed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum, _frame) -> None:  # noqa: ANN001
        raise SystemExit(128 + signum)

    saved = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _index_requirements(sdist: Path, static: tuple[str, ...]) -> list[str]:
    """``[build-system] requires`` as pip arguments: PEP 508 requirements only, never an
    option (``--target``, ``-r FILE``) and never a direct URL (``x @ file:///...``)."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in static:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            raise SdistError(f"{sdist.name}: pyproject.toml [build-system] requires "
                             f"{text[:80]!r}, which is not a PEP 508 requirement",
                             hint="the sdist is malformed or hostile; nothing ran") from None
        if requirement.url:
            raise SdistError(f"{sdist.name}: pyproject.toml [build-system] requires a direct "
                             f"URL ({requirement.name} @ ...); ftforge installs build "
                             "requirements from the index only", hint="nothing ran")
        out.append(str(requirement))
    return out


def _checked_answer(sdist: Path, answer: object) -> list[str]:
    """The backend's list, if every entry is a PEP 508 requirement on one line."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not isinstance(answer, list) or len(answer) > 100:
        raise SdistError(f"{sdist.name}: its build backend answered {type(answer).__name__} "
                         "instead of a short list of requirements")
    for item in answer:
        try:
            if not isinstance(item, str) or len(item) > 200 or "\n" in item:
                raise InvalidRequirement(str(item)[:80])
            Requirement(item)
        except InvalidRequirement:
            raise SdistError(f"{sdist.name}: its build backend named {str(item)[:80]!r}, "
                             "which is not a PEP 508 requirement",
                             hint="the backend is broken or hostile") from None
    return list(answer)


def dynamic_build_requires(sdist: Path, facts: SdistFacts, *,
                           limits: SourceLimits = SourceLimits()) -> tuple[str, ...]:
    """Requirements the backend adds beyond ``[build-system] requires`` (in-tree
    backend wrappers only; a known backend's additions are known)."""
    if facts.backend_wrapper is None:
        return ()
    cache = paths.cache_root() / "pep517" / f"{sha256_of(sdist)}.json"
    asked = None
    if cache.is_file():
        try:
            asked = _checked_answer(sdist, json.loads(cache.read_text()))
        except (ValueError, SdistError):
            asked = None  # a damaged cache entry: ask again
    if asked is None:
        asked = _ask_backend(sdist, facts.build_requires, limits)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asked))
    static = {requirement_name(r) for r in facts.build_requires}
    if facts.backend == "setuptools":
        # Wrappers around setuptools pass on its legacy "wheel" answer; setuptools >= 70.1
        # ships bdist_wheel itself, so it is no build requirement.
        static.add("wheel")
    return tuple(r for r in asked if requirement_name(r) not in static)
