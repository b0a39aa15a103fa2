"""Create conda environments with py-rattler, the way ``conda create`` would."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from . import paths
from .errors import ChannelError, FtforgeError, SolveError
from .variants import PythonVariant

__all__ = [
    "CHANNEL_PRIORITIES",
    "ChannelPriorityName",
    "SolvedPackage",
    "channel_url",
    "create",
    "environment_python",
    "install_into",
    "installed_packages",
    "solve",
]

ChannelPriorityName = Literal["strict", "flexible", "disabled"]
CHANNEL_PRIORITIES: tuple[str, ...] = get_args(ChannelPriorityName)


@dataclass(frozen=True)
class SolvedPackage:
    name: str
    version: str
    build: str
    channel: str
    subdir: str
    depends: tuple[str, ...]
    track_features: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}={self.build}"


def channel_url(channel: str) -> str:
    """A directory becomes a ``file://`` URL; URLs and names pass through."""
    if "://" in channel:
        return channel
    path = Path(channel).expanduser()
    if path.exists() or channel.startswith((".", "/", "~")):
        if not (path / "noarch" / "repodata.json").is_file():
            raise FtforgeError(
                f"{path}: not a channel (no noarch/repodata.json)",
                hint="publish packages into it with `ftforge channel publish` first",
            )
        return path.resolve().as_uri()
    return channel


_CONDA_EQ_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)=(?P<version>[^=\s]+)(?:=(?P<build>[^=\s]+))?$")


def normalize_spec(spec: str) -> str:
    """conda's ``name=version=build`` shorthand (``python_abi=*=*_cp313t``,
    ``python=3.13=*_cp313t``) in the space form rattler parses strictly;
    ``=3.13`` means ``3.13.*`` as in conda."""
    match = _CONDA_EQ_SPEC.match(spec.strip())
    if not match:
        return spec
    version = match["version"]
    if version != "*" and not any(c in version for c in "*<>!~,|"):
        version = f"{version}.*"
    return " ".join(p for p in (match["name"], version, match["build"]) if p)


def _client():
    """An HTTP client that also reads ``oci://`` channels (rattler's OCI middleware)."""
    from rattler.networking import AuthenticationMiddleware, Client, OciMiddleware

    return Client([AuthenticationMiddleware(), OciMiddleware()])


REVALIDATED_SCHEMES = ("oci://",)
"""Channels whose cached repodata is never trusted without reading the channel again.

An ``oci://`` channel's repodata is a blob named by a tag: rattler's OCI middleware
reads the tag's manifest, then fetches the blob, and the repodata cache records the
*blob's* ``Cache-Control`` as the channel's. A registry serves content-addressed blobs
as immutable (docker-registry: ``max-age=31536000``), so a channel pushed again (the
tag moved) would not be read again for a year: new packages stay invisible and a
package pushed again with other bytes fails its hash check. py-rattler 0.28 has no
"always revalidate" policy (its cache actions keep the cache or drop it, validators
included), so these channels are read with ``no-cache``: per subdir and solve, the
manifest (four reads, rattler's) and the repodata blob, no 304
(benchmarks/bench_oci_revalidation.py). HTTP channels keep their server's
``Cache-Control`` (ftforge's nginx: ``no-cache``, revalidated by ETag; ``channel
serve``: always in full); ``file://`` channels are read from disk every time."""


def _gateway(channel_urls: Sequence[str] = ()):
    """A repodata gateway caching under ftforge's cache root; ``channel_urls`` that are
    :data:`REVALIDATED_SCHEMES` channels are read again on every query."""
    from rattler import Gateway, SourceConfig

    fresh = {url: SourceConfig(cache_action="no-cache") for url in channel_urls
             if url.startswith(REVALIDATED_SCHEMES)}
    return Gateway(cache_dir=paths.cache_root() / "repodata", client=_client(),
                   per_channel_config=fresh)


def _priority(name: ChannelPriorityName):
    from rattler import ChannelPriority

    return {"strict": ChannelPriority.Strict, "flexible": ChannelPriority.Flexible,
            "disabled": ChannelPriority.Disabled}[name]


def _to_solved(record) -> SolvedPackage:
    return SolvedPackage(
        name=record.name.normalized, version=str(record.version), build=str(record.build),
        channel=str(record.channel or ""), subdir=record.subdir,
        depends=tuple(record.depends), track_features=tuple(record.track_features or ()),
    )


async def _solve_records(channels: Sequence[str], specs: Sequence[str],
                         priority: ChannelPriorityName, pinned: Sequence = (),
                         locked: Sequence = (), constraints: Sequence[str] = (),
                         with_pip: bool = True) -> list:
    from rattler import Channel, VirtualPackage
    from rattler import solve as rattler_solve
    from rattler.exceptions import GatewayError, SolverError

    urls = [channel_url(c) for c in channels]
    normalized = [_checked_spec(s) for s in specs]
    try:
        return await rattler_solve(
            [Channel(url) for url in urls], normalized,
            gateway=_gateway(urls),
            channel_priority=_priority(priority),
            virtual_packages=VirtualPackage.detect(),
            pinned_packages=list(pinned),
            locked_packages=list(locked),
            constraints=list(constraints),
            channel_relations="disabled",
            # conda's default (add_pip_as_python_dependency): every python brings pip.
            add_pip_as_python_dependency=with_pip,
        )
    except SolverError as exc:
        raise SolveError(
            f"cannot solve {' '.join(specs)} from {', '.join(channels)}:\n{exc}",
            hint="check the channel holds packages for these specs and this ABI",
        ) from None
    except GatewayError as exc:
        raise ChannelError(f"cannot read the repodata of {', '.join(channels)}: {_one_line(exc)}",
                           hint="check the channel URL and that its server answers") from None


def _checked_spec(spec: str) -> str:
    """``spec`` as conda reads it (``python 3.13.5 BUILD`` is ``==3.13.5``, which
    rattler's solver, parsing strictly, refused with a traceback), written in the form
    the solver parses; or a one-line SolveError naming it."""
    from rattler import MatchSpec

    try:
        match = MatchSpec(normalize_spec(spec))
    except Exception as exc:  # InvalidMatchSpecError and friends
        raise SolveError(
            f"{spec!r} is not a match spec: {_one_line(exc)}",
            hint="write a spec as conda does: NAME, 'NAME 3.13.*', 'NAME >=1.2', "
            "'NAME 3.13.* BUILD' or NAME=VERSION=BUILD") from None
    # conda honours these; rattler's solver keeps them in the spec and ignores them,
    # so `alpha[fn=alpha-1.0-...]` could install another alpha
    ignored = [key for key, value in (("fn", match.file_name), ("subdir", match.subdir))
               if value]
    if ignored:
        raise SolveError(
            f"{spec!r}: the solver here does not enforce [{'/'.join(ignored)}=...]",
            hint="name the version and the build instead: 'NAME VERSION BUILD'")
    return str(match)


def _one_line(exc: BaseException) -> str:
    """rattler's multi-line error (a chain of "Caused by:") as one line."""
    return ": ".join(" ".join(line.split()) for line in str(exc).splitlines() if line.strip())


async def _install(records: list, prefix: Path, installed: list | None = None) -> None:
    from rattler import install
    from rattler.exceptions import InstallerError

    try:
        await install(records, target_prefix=prefix, cache_dir=paths.pkgs_dir(),
                      installed_packages=installed, show_progress=False,
                      client=_client())
    except InstallerError as exc:
        raise ChannelError(
            f"installing into {prefix} failed: {_one_line(exc)}",
            hint="a hash mismatch means the channel serves other bytes than its repodata "
                 "lists: publish or push the channel again, or tell its owner") from None


def solve(channels: Sequence[str], specs: Sequence[str], *,
          priority: ChannelPriorityName = "strict",
          constraints: Sequence[str] = (), with_pip: bool = True) -> list[SolvedPackage]:
    """Solve without installing (a dry run); like conda, python brings pip unless
    ``with_pip`` is False."""
    records = asyncio.run(_solve_records(channels, specs, priority, constraints=constraints,
                                         with_pip=with_pip))
    return sorted((_to_solved(r) for r in records), key=lambda p: p.name)


def create(prefix: Path, channels: Sequence[str], specs: Sequence[str], *,
           priority: ChannelPriorityName = "strict", force: bool = False,
           with_pip: bool = True) -> list[SolvedPackage]:
    """Solve ``specs`` and install them into a new environment at ``prefix``.

    As conda does by default, python brings ``pip`` (``with_pip=False`` leaves it
    out). The environment's ``python_abi`` is written to ``conda-meta/pinned``, so
    conda and mamba keep its interpreter ABI too."""
    if not specs:
        raise FtforgeError("nothing to install", hint="name at least one spec, e.g. python-freethreading")
    prefix = prefix.resolve()
    if prefix.exists() and any(prefix.iterdir()):
        if not force:
            raise FtforgeError(
                f"{prefix} already exists and is not empty",
                hint="choose a new --prefix, or pass --force to replace it",
            )
        shutil.rmtree(prefix)
    existed = prefix.exists()

    async def run() -> list:
        records = await _solve_records(channels, specs, priority, with_pip=with_pip)
        await _install(records, prefix)
        return records

    try:
        records = asyncio.run(run())
        write_abi_pin(prefix, _interpreter(records))
    except BaseException:
        # a half-installed environment would refuse the retry ("not empty"): what
        # this command put there goes (an empty directory it was given stays)
        _remove_what_was_installed(prefix, keep_directory=existed)
        raise
    return sorted((_to_solved(r) for r in records), key=lambda p: p.name)


def _remove_what_was_installed(prefix: Path, *, keep_directory: bool) -> None:
    if not prefix.is_dir():
        return
    if not keep_directory:
        shutil.rmtree(prefix, ignore_errors=True)
        return
    for child in list(prefix.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def installed_packages(prefix: Path) -> dict[str, dict]:
    """``conda-meta/*.json`` of an environment, by package name."""
    meta = prefix / "conda-meta"
    out = {}
    for path in sorted(meta.glob("*.json")):
        data = json.loads(path.read_text())
        out[data["name"]] = data
    return out


def _record(records, name: str):
    return next((r for r in records if r.name.normalized == name), None)


def _interpreter(records) -> tuple[str, PythonVariant] | None:
    """(python version, ABI) from an environment's records (``python_abi`` says the ABI)."""
    from .variants import variant_of_build_string

    python, abi = _record(records, "python"), _record(records, "python_abi")
    if python is None:
        return None
    variant = variant_of_build_string(str((abi or python).build))
    return (str(python.version), variant) if variant else None


PINNED_FILE = "conda-meta/pinned"


def write_abi_pin(prefix: Path, interpreter: tuple[str, PythonVariant] | None) -> str | None:
    """Keep ``conda-meta/pinned`` holding the environment's ``python_abi`` (conda's and
    mamba's pin file: one match spec per line); other lines a user wrote are kept."""
    if interpreter is None:
        return None
    from .atomic import write_atomic

    pin = interpreter[1].python_abi_spec
    path = prefix / PINNED_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.split()[:1] != ["python_abi"]]
    write_atomic(path, "\n".join([*kept, pin]) + "\n")
    return pin


def _prefix_records(prefix: Path) -> list:
    from rattler import PrefixRecord

    return [PrefixRecord.from_path(p) for p in sorted((prefix / "conda-meta").glob("*.json"))]


def environment_python(prefix: Path) -> tuple[str, PythonVariant] | None:
    """(python version, ABI) of an environment, from its ``conda-meta``."""
    return _interpreter(_prefix_records(prefix))


@dataclass(frozen=True)
class InstallResult:
    before: tuple[str, str] | None
    """(version, build) of python before."""
    after: tuple[str, str] | None
    packages: list[SolvedPackage]
    pin: str | None


def install_into(prefix: Path, channels: Sequence[str], specs: Sequence[str], *,
                 priority: ChannelPriorityName = "strict", update_all: bool = False,
                 switch_abi: bool = False, dry_run: bool = False) -> InstallResult:
    """Add ``specs`` to an existing environment, keeping its interpreter ABI.

    Like conda's ``pinned`` file: the environment's ``python_abi`` is a solver
    constraint unless ``switch_abi``. ``update_all`` re-solves every installed
    package for its newest version (still under the pin). ``dry_run`` solves and
    changes nothing.
    """
    prefix = prefix.resolve()
    if not (prefix / "conda-meta").is_dir():
        raise FtforgeError(f"{prefix} is not an environment (no conda-meta/)",
                           hint="create one first with `ftforge create`")
    installed = _prefix_records(prefix)
    current = _interpreter(installed)
    pin = current[1].python_abi_spec if current and not switch_abi else None
    names = [r.name.normalized for r in installed]
    wanted = list(specs) + (names if update_all else [])
    if not wanted:
        raise FtforgeError("nothing to install", hint="name a spec, or pass --update-all")
    before = _python_of(installed)

    try:
        records = asyncio.run(_solve_records(
            channels, wanted, priority, locked=() if update_all else installed,
            constraints=[pin] if pin else ()))
    except SolveError:
        from .explain import explain

        story = explain(specs or names, channels, environment=current, priority=priority)
        if not story:
            raise
        raise SolveError("\n".join(story), hint=(
            f"this environment is pinned to {pin} (pass --switch-abi to change the "
            "interpreter)" if pin else None)) from None
    if not dry_run:
        asyncio.run(_install(records, prefix, installed))
        write_abi_pin(prefix, _interpreter(records))
    return InstallResult(before, _python_of(records),
                         sorted((_to_solved(r) for r in records), key=lambda p: p.name), pin)


def _python_of(records) -> tuple[str, str] | None:
    python = _record(records, "python")
    return (str(python.version), str(python.build)) if python is not None else None
