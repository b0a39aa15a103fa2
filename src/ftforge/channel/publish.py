"""Publish to and remove from a channel directory: audited, atomic, immutable, owned.

One publish, under the channel's lock:

1. copy every input into ``.ftforge/staging/`` and audit the *copy* (what is
   audited is exactly what is published);
2. refuse on any audit finding, on a file name already published with other
   content (immutability), or on a name owned by another recipe;
3. move the staged files into their subdirs (``os.replace``, same filesystem);
4. re-index through the shadow index and promote atomically
   (:mod:`ftforge.channel.index`), then check the channel's ABI invariants
   and write the browsable page;
5. append a record to ``.ftforge/log.jsonl``.

A crash anywhere leaves the previous ``repodata.json`` serving and every
published package intact; the next publish (or ``ftforge channel reindex``)
indexes what a crashed one had already moved in. Removed packages are kept
under ``.ftforge/removed/`` with a record of who removed them and why.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..build.mirror import sha256_of
from ..errors import ChannelError
from .audit import AuditReport, Limits, PackageRefused, audit_package, package_stem
from .index import reindex
from .layout import PACKAGE_SUFFIXES, internal_dir, mark_channel, served_subdirs
from .owners import check_owners, register

__all__ = ["PublishResult", "RemoveResult", "channel_lock", "publish", "read_log", "remove"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PublishResult:
    added: list[Path]
    unchanged: list[Path]
    reports: list[AuditReport] = field(default_factory=list)


@dataclass(frozen=True)
class RemoveResult:
    removed: list[Path]
    kept_at: list[Path]


@contextmanager
def channel_lock(channel: Path) -> Iterator[None]:
    """Exclusive, process-wide lock on a channel (``fcntl``; released if the holder dies)."""
    state = internal_dir(channel)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:
        return f"uid {os.getuid()}"


def _log(channel: Path, **record: object) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    path = internal_dir(channel) / "log.jsonl"
    with open(path, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_log(channel: Path) -> list[dict]:
    path = internal_dir(channel) / "log.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a record cut short by a crash
            continue
    return records


def _validate_inputs(packages: list[Path]) -> list[Path]:
    for pkg in packages:
        if not pkg.name.endswith(PACKAGE_SUFFIXES):
            raise ChannelError(f"{pkg}: not a conda package (.conda or .tar.bz2)",
                               hint="publish the files `ftforge build` wrote")
        if not pkg.is_file():
            raise ChannelError(f"{pkg}: no such package file",
                               hint="build it first with `ftforge build`")
    unique: dict[str, Path] = {}
    for pkg in packages:
        first = unique.setdefault(pkg.name, pkg)
        if first is not pkg and sha256_of(first) != sha256_of(pkg):
            raise ChannelError(f"{first} and {pkg} have the same file name and different content",
                               hint="publish one of them; a file name is published once")
    return list(unique.values())


def _clear_staging(channel: Path) -> Path:
    staging = internal_dir(channel) / "staging"
    if staging.exists():  # left by a crashed publish: never published, safe to drop
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(
    packages: Iterable[Path],
    channel: Path,
    *,
    recipe: str | None = None,
    by: str | None = None,
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> PublishResult:
    """Audit and publish ``packages`` into ``channel``; all or nothing."""
    packages = _validate_inputs([Path(p) for p in packages])
    say = progress or (lambda _msg: None)
    mark_channel(channel)
    with channel_lock(channel):
        _finish_removals(channel)
        staging = _clear_staging(channel) / uuid.uuid4().hex
        staging.mkdir()
        try:
            return _publish_locked(packages, channel, staging, recipe, by, limits, say)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # emptied by a publish, dropped on refusal


def _publish_locked(packages: list[Path], channel: Path, staging: Path, recipe: str | None,
                    by: str | None, limits: Limits, say: Progress) -> PublishResult:
    staged = []
    for pkg in packages:
        say(f"staging {pkg.name}")
        copy = staging / pkg.name
        shutil.copyfile(pkg, copy)
        staged.append(copy)
    # what is audited is exactly what is published: the staged copies
    reports = audit_or_refuse(staged, channel, limits, shown_as=packages, progress=say)

    added, unchanged, moves = [], [], []
    for report, staged_copy in zip(reports, staged):
        record = report.record
        target = channel / record.subdir / record.filename
        if target.exists():
            if sha256_of(target) == record.sha256:
                unchanged.append(target)
                continue
            raise ChannelError(
                f"{record.filename} is already in {channel / record.subdir} "
                "with different content",
                hint="published packages are immutable: bump the build number and rebuild",
            )
        moves.append((record, staged_copy, target))
    claims = check_owners(channel, [record.name for record, _, _ in moves], recipe)

    for _record, staged_copy, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged_copy, 0o644)
        os.replace(staged_copy, target)
        added.append(target)
    register(channel, claims)
    say(f"indexing {channel}")
    _refresh(channel, {record.subdir for record, _, _ in moves})
    who = _who(by)
    for record, _, target in moves:
        _log(channel, action="publish", file=f"{record.subdir}/{target.name}",
             sha256=record.sha256, recipe=recipe, by=who)
    return PublishResult(added, unchanged, reports)


def audit_or_refuse(paths: list[Path], where: object, limits: Limits = Limits(), *,
                    shown_as: list[Path] | None = None,
                    progress: Progress | None = None) -> list[AuditReport]:
    """Audit each package and check the channel invariants on its metadata; raise
    :class:`PackageRefused` naming every finding if any package fails. ``shown_as``:
    the paths to report (the originals, when ``paths`` are staged copies)."""
    say = progress or (lambda _msg: None)
    reports = []
    for path, shown in zip(paths, shown_as or paths):
        say(f"auditing {path.name}")
        report = audit_package(path, limits)
        _check_invariants(report, where)
        report.path = shown
        reports.append(report)
    refused = [r for r in reports if not r.ok]
    if refused:
        raise PackageRefused(refused)
    return reports


def _check_invariants(report: AuditReport, where: object) -> None:
    """The channel check's invariants, on a record about to be published."""
    from .audit import Finding
    from .check import check_record

    if report.record is None:
        return
    record = {**report.record.index, "fn": report.record.filename}
    for violation in check_record(record, str(where)):
        report.findings.append(Finding(f"channel.{violation.check}", violation.message,
                                       "info/index.json"))


def _refresh(channel: Path, subdirs: set[str] | None = None) -> None:
    from .page import write_page

    reindex(channel, subdirs=subdirs)
    write_page(channel)


def recover(channel: Path) -> None:
    """Finish what a crashed publish left: index every package in the subdirs."""
    if not (channel / "noarch").is_dir():
        raise ChannelError(f"{channel}: not a channel (no noarch/ subdir)",
                           hint="publish a package into it first")
    with channel_lock(channel):
        _clear_staging(channel)
        if not _finish_removals(channel):
            _refresh(channel)


def remove(
    filenames: Iterable[str],
    channel: Path,
    *,
    reason: str,
    by: str | None = None,
) -> RemoveResult:
    """Take packages out of the index; the files are kept under ``.ftforge/removed``.

    The removal is written down first (``.ftforge/removing.json``), then the
    index stops listing the files, then they move away: a crash at any point
    is finished by the next publish, remove or ``channel reindex``, and no
    index ever lists a file that is gone.
    """
    filenames = [Path(n).name for n in filenames]
    if not reason.strip():
        raise ChannelError("a removal needs a reason", hint="pass --reason '...'")
    with channel_lock(channel):
        _finish_removals(channel)
        found = []
        for name in filenames:
            package_stem(name)
            matches = [f"{sub}/{name}" for sub in served_subdirs(channel)
                       if (channel / sub / name).is_file()]
            if not matches:
                raise ChannelError(f"{name} is not published in {channel}",
                                   hint="`ftforge channel list` shows what is published")
            found.extend(matches)
        intent = {"files": found, "by": _who(by), "reason": reason,
                  "stamp": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}
        write_atomic(_removing(channel), json.dumps(intent, indent=2))
        kept = _finish_removals(channel)
    return RemoveResult([channel / f for f in found], kept)


def _removing(channel: Path) -> Path:
    return internal_dir(channel) / "removing.json"


def _finish_removals(channel: Path) -> list[Path]:
    """Carry out a written-down removal (new or left by a crash). Lock held."""
    path = _removing(channel)
    if not path.exists():
        return []
    intent = json.loads(path.read_text())
    files = [f for f in intent["files"] if (channel / f).exists()]
    touched = {Path(f).parent.name for f in files}
    reindex(channel, subdirs=touched, exclude={Path(f).name for f in files})
    kept = []
    for rel in files:
        source = channel / rel
        keep = internal_dir(channel) / "removed" / intent["stamp"] / rel
        keep.parent.mkdir(parents=True, exist_ok=True)
        _log(channel, action="remove", file=rel, sha256=sha256_of(source), by=intent["by"],
             reason=intent["reason"], kept_at=str(keep.relative_to(channel)))
        os.replace(source, keep)
        kept.append(keep)
    _refresh(channel, touched)
    path.unlink()
    return kept
