"""Publish to and remove from a channel directory: audited, atomic, immutable, owned.

One publish, under the channel's lock:

1. copy every input into ``.ftforge/staging/`` (threads copy and ``fsync`` while
   the audit reads the copies already whole) and audit the *copy* (what is
   audited is exactly what is published); a copy byte-identical to a file the
   channel already serves and indexes under its name is reported unchanged
   without a second audit;
2. refuse on any audit finding (metadata checked under conda's rules, the
   package's subdir matching its place), on a channel invariant the
   transaction would break (a free-threaded build without its GIL twin), on a
   file name already published with other content or ever removed
   (immutability: a removed name stays burned), or on a name owned by another
   recipe or a wrong recipe token;
3. move the staged files into their subdirs (``os.replace``, same filesystem)
   and register the claims;
4. re-index through the shadow index and promote atomically
   (:mod:`ftforge.channel.index`; the audited records are added by
   :mod:`ftforge.channel.repodata` without reading the packages again, py-rattler's
   ``index_fs`` runs when that writer declines) and write the browsable page; if
   indexing fails, the moves and claims are rolled back and the old index re-made;
5. append the records to ``.ftforge/log.jsonl`` (one write, one ``fsync``).

Before the first move a journal (``.ftforge/publishing.json``: the files, their
sha256, recipe and publisher) is written, and it is deleted after the log line
(or the roll-back). A publish killed in between leaves it: the next publish,
remove or ``ftforge channel reindex`` first audits every package the log does
not record, re-indexes every subdir and logs the journaled files (``recovered``),
as it does when a subdir holds package files its index does not list (a crash of
an older ftforge, a file copied in by hand).

Every file an index names (package, shard) is on disk before that index
replaces the old one (:mod:`ftforge.channel.durable`). A crash anywhere leaves the previous ``repodata.json`` serving and every
published package intact; the next publish (or ``ftforge channel reindex``)
indexes what a crashed one had already moved in. Removed packages are kept
under ``.ftforge/removed/`` with a record of who removed them and why.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..build.mirror import sha256_of
from ..errors import ChannelError
from .audit import AuditReport, Finding, Limits, PackageRefused, package_stem, refusal_lines
from .audit_pool import audit_each
from .check import missing_twins
from .durable import sync_paths
from .index import INDEX_FILES, channel_records, reindex
from .layout import (
    INTERNAL_DIR,
    PACKAGE_SUFFIXES,
    internal_dir,
    known_subdirs,
    mark_channel,
    require_channel,
    served_subdirs,
)
from .owners import (
    LAST_OWNERS,
    OWNERS_FILE,
    TOKENS_FILE,
    check_owners,
    register,
    require_owner,
)

__all__ = ["PublishResult", "RemoveResult", "channel_lock", "publish", "read_log", "remove",
           "unfinished_work"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PublishResult:
    added: list[Path]
    unchanged: list[Path]
    reports: list[AuditReport] = field(default_factory=list)
    """The audit of every input that was not already published byte for byte."""
    tokens: dict[str, str] = field(default_factory=dict)
    """Tokens minted by this publish, ``{recipe: token}``: shown once, stored hashed."""


@dataclass(frozen=True)
class RemoveResult:
    removed: list[Path]
    kept_at: list[Path]


@contextmanager
def os_errors(channel: Path) -> Iterator[None]:
    """A full disk, a read-only or unwritable channel: one line naming the file."""
    try:
        yield
    except ChannelError:
        raise
    except OSError as exc:
        where = exc.filename or channel
        what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(
                    exc.errno, exc.strerror or type(exc).__name__)
        raise ChannelError(f"{where}: {what}; the channel {channel} was left as it was "
                           "(or as the last whole publish left it)",
                           hint="free space or fix permissions, then run the command again "
                           "(`ftforge channel reindex` finishes anything left half-done)"
                           ) from None


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


def _log(channel: Path, *records: dict[str, object]) -> None:
    """Append ``records`` to the channel's log: one write and one ``fsync`` for a whole
    publish (a record cut short by a crash is skipped when read)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = "".join(json.dumps({"time": stamp, **r}, sort_keys=True) + "\n" for r in records)
    path = internal_dir(channel) / "log.jsonl"
    with open(path, "a") as handle:
        handle.write(lines)
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
            what = "a directory" if pkg.is_dir() else "not a regular file" if pkg.exists() \
                else "no such package file"
            raise ChannelError(f"{pkg}: {what}",
                               hint="publish the .conda files `ftforge build` wrote")
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
    token: str | None = None,
    by: str | None = None,
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> PublishResult:
    """Audit and publish ``packages`` into ``channel``; all or nothing.

    ``recipe`` / ``token``: who publishes; a recipe's first publish mints its token
    (returned in :attr:`PublishResult.tokens`), later ones must give it.
    """
    channel = Path(channel)
    packages = _validate_inputs([Path(p) for p in packages])
    say = progress or (lambda _msg: None)
    mark_channel(channel)
    with os_errors(channel), channel_lock(channel):
        _finish_publish(channel)
        _finish_removals(channel)
        staging = _clear_staging(channel) / uuid.uuid4().hex
        staging.mkdir()
        try:
            return _publish_locked(packages, channel, staging, recipe, token, by, limits, say)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # emptied by a publish, dropped on refusal


def _subdir_here(package: Path) -> str | None:
    """The subdir a package file sits in, when its folder is named like one
    (``output/linux-64/x.conda``): its index.json must agree."""
    parent = package.parent.name
    return parent if parent in known_subdirs() else None


STAGE_THREADS = 8
"""Threads copying inputs into staging (and syncing the copies) while the audit reads
the copies already made: the copies wait on the disk, the audit on a core."""


def _stage(source: Path, copy: Path) -> None:
    """A private, durable copy of an input: what is audited is what is published."""
    shutil.copyfile(source, copy)
    with open(copy, "rb") as handle:
        os.fsync(handle.fileno())


def _publish_locked(packages: list[Path], channel: Path, staging: Path, recipe: str | None,
                    token: str | None, by: str | None, limits: Limits,
                    say: Progress) -> PublishResult:
    say(f"staging {len(packages)} package(s)")
    staged = [staging / pkg.name for pkg in packages]
    with ThreadPoolExecutor(max_workers=min(STAGE_THREADS, len(packages) or 1)) as pool:
        copies = dict(zip(staged, (pool.submit(_stage, pkg, copy)
                                   for pkg, copy in zip(packages, staged))))
        try:
            return _publish_staged(packages, staged, copies, channel, recipe, token, by,
                                   limits, say)
        finally:
            for future in copies.values():
                future.cancel()  # a refusal or an error: copies not yet started are dropped


def _publish_staged(packages: list[Path], staged: list[Path], copies: dict[Path, Future],
                    channel: Path, recipe: str | None, token: str | None, by: str | None,
                    limits: Limits, say: Progress) -> PublishResult:
    def ready(copy: Path) -> Path:
        copies[copy].result()  # the copy is whole (and synced) before anything reads it
        return copy

    digests: dict[str, str] = {}
    parsed: dict[str, tuple[str, dict]] = {}
    existing = channel_records(channel, digests=digests, parsed=parsed)
    if _listing_differs(channel, existing):  # left by a crash or copied in: recover first
        say(f"re-indexing {channel}: package files its index does not list")
        _recover_locked(channel)
        digests.clear()
        parsed.clear()
        existing = channel_records(channel, digests=digests, parsed=parsed)
    heres = [_subdir_here(p) for p in packages]
    unchanged = _already_published(channel, staged, heres, existing, ready)
    todo = [i for i, copy in enumerate(staged) if copy not in unchanged]
    reports = audit_or_refuse([staged[i] for i in todo], channel, limits,
                              shown_as=[packages[i] for i in todo], progress=say,
                              existing=existing, subdirs_here=[heres[i] for i in todo],
                              ready=ready)
    staged = [staged[i] for i in todo]
    unchanged = [target for target in unchanged.values()]

    added, moves = [], []
    burned = _burned(channel)
    # Clients' package caches key on name-version-build, whatever the subdir or the
    # extension: that identity is published once in the whole channel and stays burned.
    burned_ids = {_identity(rel.rsplit("/", 1)[-1]) for rel in burned}
    live_ids = {_identity(str(r.get("fn"))): f"{r.get('subdir')}/{r.get('fn')}"
                for r in existing}
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
        where, ident = f"{record.subdir}/{record.filename}", _identity(record.filename)
        if where in burned or ident in burned_ids:
            raise ChannelError(
                f"{record.filename}: {ident} was published in {channel} and removed; "
                "a removed name-version-build is never published again (in any subdir, "
                "as .conda or .tar.bz2)",
                hint="bump the build number and rebuild (clients may have cached the old file)")
        if live_ids.get(ident, where) != where:
            raise ChannelError(
                f"{record.filename}: {ident} is already published in {channel} as "
                f"{live_ids[ident]}; a name-version-build is published once per channel",
                hint="published packages are immutable: bump the build number and rebuild")
        live_ids[ident] = where
        moves.append((record, staged_copy, target))
    claims = check_owners(channel, [record.name for record, _, _ in moves], recipe, token)

    saved = _save_ownership(channel)
    saved.update(_save_index(channel, {record.subdir for record, _, _ in moves}))
    minted: dict[str, str] = {}
    touched = {record.subdir for record, _, _ in moves}
    who = _who(by)
    if moves:  # read by the next publish if this one dies before its log line
        _write_journal(channel, {
            "files": [{"file": f"{record.subdir}/{target.name}", "sha256": record.sha256}
                      for record, _, target in moves],
            "recipe": recipe, "by": who})
    try:
        for _record, staged_copy, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(staged_copy, 0o644)
            os.replace(staged_copy, target)
            added.append((staged_copy, target))
        # the packages (data, synced when staged, and names) and the journal are on disk
        # before any index names them (synced together: one wait for all)
        sync_paths([channel / sub for sub in sorted(touched)]
                   + ([_journal(channel), internal_dir(channel)] if moves else []))
        if moves:
            minted = register(channel, claims, {recipe} if recipe else set())
        say(f"indexing {channel}")
        added_records: dict[str, list] = {}
        for record, _, _ in moves:
            added_records.setdefault(record.subdir, []).append(record)
        _refresh(channel, touched, before=(existing, digests), added=added_records,
                 known=parsed)
    except Exception as exc:
        _roll_back(channel, added, saved, touched)
        _journal(channel).unlink(missing_ok=True)
        raise ChannelError(
            f"{channel}: publishing {', '.join(r.filename for r, _, _ in moves)} failed while "
            f"indexing ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the publish was rolled back",
            hint="the channel serves what it served before; fix the package and publish again"
        ) from None
    if moves:
        _log(channel, *({"action": "publish", "file": f"{record.subdir}/{target.name}",
                         "sha256": record.sha256, "recipe": recipe, "by": who}
                        for record, _, target in moves))
        _journal(channel).unlink()
    return PublishResult([t for _, t in added], unchanged, reports, minted)


def _already_published(channel: Path, staged: list[Path], heres: list[str | None],
                       existing: list[dict], ready: Callable[[Path], Path] = lambda p: p
                       ) -> dict[Path, Path]:
    """``{staged copy: served file}`` for inputs byte-identical to a file the channel
    serves and indexes under the same name (a re-run publishing every output again):
    those were audited when first published and are left as they are, unread again.
    Anything else -- a new name, other bytes, an input in another subdir's folder -- is
    audited as usual."""
    by_fn: dict[str, list[dict]] = {}
    for record in existing:
        by_fn.setdefault(str(record.get("fn")), []).append(record)
    same: dict[Path, Path] = {}
    for copy, here in zip(staged, heres):
        for record in by_fn.get(copy.name, ()):
            subdir = str(record["subdir"])
            served = channel / subdir / copy.name
            if here not in (None, subdir) or not served.is_file():
                continue
            digest = sha256_of(ready(copy))
            if record.get("sha256") == digest and sha256_of(served) == digest:
                same[copy] = served
                break
    return same


def _identity(filename: str) -> str:
    """``name-version-build`` of a package file name (what clients' caches key on)."""
    for ext in (".conda", ".tar.bz2"):
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def _burned(channel: Path) -> set[str]:
    """Every ``subdir/file`` ever removed from the channel (kept files and log records).

    The log grows with every publish; only its removal records matter here, so a line
    is parsed only if it can be one (it holds ``remove``, or a JSON escape that could
    spell it)."""
    burned = set()
    path = internal_dir(channel) / "log.jsonl"
    data = path.read_bytes() if path.exists() else b""
    if b"remove" in data or b"\\u" in data:  # else no line can be a removal
        for line in data.splitlines():
            if b"remove" not in line and b"\\u" not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:  # a record cut short by a crash, or not UTF-8
                continue
            if isinstance(record, dict) and record.get("action") == "remove":
                burned.add(str(record.get("file")))
    removed = internal_dir(channel) / "removed"
    if removed.is_dir():
        for stamp in removed.iterdir():
            for kept in stamp.glob("*/*"):
                burned.add(f"{kept.parent.name}/{kept.name}")
    return burned


_OWNERSHIP_FILES = (OWNERS_FILE, f"{INTERNAL_DIR}/{TOKENS_FILE}", f"{INTERNAL_DIR}/{LAST_OWNERS}")


def _save_ownership(channel: Path) -> dict[str, bytes | None]:
    return {rel: (channel / rel).read_bytes() if (channel / rel).is_file() else None
            for rel in _OWNERSHIP_FILES}


def _save_index(channel: Path, subdirs: set[str]) -> dict[str, bytes | None]:
    """The served index files and page as they are, to restore byte for byte."""
    rels = ["index.html"] + [f"{sub}/{name}" for sub in sorted(subdirs) for name in INDEX_FILES]
    saved = {rel: (channel / rel).read_bytes() if (channel / rel).is_file() else None
             for rel in rels}
    for sub in subdirs:
        # shards are content-addressed and never rewritten: their names are enough
        shards = channel / sub / "shards"
        saved.update({f"{sub}/shards/{p.name}": b"" for p in (
            shards.iterdir() if shards.is_dir() else ())})
        saved[f"{sub}/shards/"] = None  # marks the folder: shards not listed are new
    return saved


def _roll_back(channel: Path, moved: list[tuple[Path, Path]], saved: dict[str, bytes | None],
               touched: set[str]) -> None:
    """Undo a publish whose indexing failed: files back to staging, then claims, tokens,
    index files and page exactly as they were (the shadow index re-syncs next time)."""
    for staged_copy, target in reversed(moved):
        os.replace(target, staged_copy)
    for rel, data in saved.items():
        path = channel / rel
        if rel.endswith("/shards/"):
            for shard in (path.iterdir() if path.is_dir() else ()):
                if f"{rel}{shard.name}" not in saved:
                    shard.unlink()
        elif "/shards/" in rel:
            continue  # an existing shard: untouched
        elif data is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, data)


def audit_or_refuse(paths: list[Path], where: object, limits: Limits = Limits(), *,
                    shown_as: list[Path] | None = None,
                    progress: Progress | None = None,
                    existing: list[dict] | None = None,
                    subdirs_here: list[str | None] | None = None,
                    ready: Callable[[Path], Path] | None = None) -> list[AuditReport]:
    """Audit each package and check the channel invariants on its metadata; raise
    :class:`PackageRefused` naming every finding if any package fails. ``shown_as``:
    the paths to report (the originals, when ``paths`` are staged copies);
    ``existing``: the channel's records, for the invariants across packages (variant
    completeness); ``subdirs_here``: the subdir each input sits in, if known;
    ``ready``: called with each path before it is read (waits for its staged copy)."""
    say = progress or (lambda _msg: None)
    reports = []
    shown_as = shown_as or paths
    # sized by the originals: staged copies may not be whole yet
    audited = audit_each(paths, limits, subdirs_here=subdirs_here, ready=ready,
                         sized_by=shown_as)
    for report, shown in zip(audited, shown_as):
        say(f"audited {shown.name}")
        _check_invariants(report, where)
        report.path = shown
        reports.append(report)
    _check_variant_complete(reports, existing or [], str(where))
    _check_linkage(reports, paths, where)
    refused = [r for r in reports if not r.ok]
    if refused:
        raise PackageRefused(refused)
    return reports


def _check_variant_complete(reports: list[AuditReport], existing: list[dict],
                            where: str) -> None:
    """Every free-threaded package of the transaction has its GIL twin, in the
    transaction or already in the channel."""
    staged = {r.record.filename: r for r in reports if r.record is not None}
    if not staged:
        return
    records = [r for r in existing if r.get("fn") not in staged] + [
        {**r.record.index, "fn": fn, "subdir": r.record.subdir} for fn, r in staged.items()]
    for violation in missing_twins(records, where, only=set(staged)):
        staged[violation.fn].findings.append(
            Finding(f"channel.{violation.check}", violation.message, "info/index.json"))


def _check_linkage(reports: list[AuditReport], paths: list[Path], where: object) -> None:
    """The linkage audit (:mod:`ftforge.channel.linkage`) on packages the archive audit passed."""
    from .linkage import check_linkage

    readable = [(r, p) for r, p in zip(reports, paths) if r.ok and r.record is not None]
    if not any(r.elf_objects for r, _ in readable):
        return  # nothing links anything: no finding is possible (and no package is re-read)
    found = check_linkage([p for _, p in readable], where if isinstance(where, Path) else None)
    for report, path in readable:
        for finding in found.get(path, []):
            report.add(finding.rule, finding.message, finding.member)


def _check_invariants(report: AuditReport, where: object) -> None:
    """The channel check's invariants, on a record about to be published."""
    from .check import check_record

    if report.record is None:
        return
    record = {**report.record.index, "fn": report.record.filename}
    for violation in check_record(record, str(where)):
        report.findings.append(Finding(f"channel.{violation.check}", violation.message,
                                       "info/index.json"))


def _refresh(channel: Path, subdirs: set[str] | None = None,
             before: tuple[list[dict], dict[str, str]] | None = None,
             added: dict[str, list] | None = None,
             known: dict[str, tuple[str, dict]] | None = None) -> None:
    """Re-index ``subdirs`` (all: None) and write the page. ``before``: the channel's
    records and their repodata digests as read before this transaction; a subdir not
    re-indexed is not read again, and the page re-renders only the names that changed.
    ``added``: the audit records of the packages just moved in, by subdir (see
    :func:`ftforge.channel.index.reindex`); a subdir they were added to without
    ``index_fs`` is not parsed again: the writer hands back what it wrote. ``known``:
    the repodata parsed before (see :func:`ftforge.channel.index.channel_records`)."""
    from .page import write_page

    written: dict[str, list[dict]] = {}
    redone = set(reindex(channel, subdirs=subdirs, added=added if before else None,
                         written=written, known=known))
    if before is None or subdirs is None:
        write_page(channel)
        return
    records, digests = before
    fresh_digests: dict[str, str] = {}
    fresh = channel_records(channel, subdirs=redone - set(written), digests=fresh_digests)
    for sub, now_records in written.items():
        fresh_digests[sub] = hashlib.sha256((channel / sub / "repodata.json").read_bytes()
                                            ).hexdigest()
        fresh.extend(now_records)
    by_subdir: dict[str, list[dict]] = {}
    for record in [r for r in records if r["subdir"] not in redone] + fresh:
        by_subdir.setdefault(record["subdir"], []).append(record)
    served = served_subdirs(channel)
    now = [r for sub in served for r in by_subdir.get(sub, [])]
    now_digests = {sub: fresh_digests[sub] if sub in redone else digests[sub]
                   for sub in served if sub in redone or sub in digests}
    # every re-indexed subdir only had records added by the writer: those names changed
    changed = {str(r.name) for sub in written for r in (added or {}).get(sub, ())} \
        if redone == set(written) else None
    write_page(channel, now, digests=now_digests, previous=before, changed=changed)


def _audit_unlogged(channel: Path) -> None:
    """Package files the publish log does not record with their bytes (copied in by
    hand, or moved in by a publish that crashed before logging) are audited before a
    re-index serves them; one that fails refuses the re-index."""
    logged: set[tuple[str, str]] = set()
    log = internal_dir(channel) / "log.jsonl"
    if log.exists():
        for line in log.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("action") == "publish":
                logged.add((str(record.get("file")), str(record.get("sha256"))))
    logged_files = {f for f, _ in logged}
    unlogged = []
    for subdir in served_subdirs(channel):
        for path in sorted((channel / subdir).iterdir()):
            if not path.name.endswith((".conda", ".tar.bz2")):
                continue
            rel = f"{subdir}/{path.name}"
            if rel not in logged_files or (rel, sha256_of(path)) not in logged:
                unlogged.append((path, subdir))
    reports = audit_each([p for p, _ in unlogged], subdirs_here=[sub for _, sub in unlogged])
    refused = [r for r in reports if not r.ok]
    if refused:
        lines = refusal_lines(refused, label=lambda r: f"{r.path.parent.name}/{r.path.name}")
        raise ChannelError(
            f"{channel}: {len(refused)} package file(s) the publish log does not record "
            "fail the audit; nothing was re-indexed:\n  " + "\n  ".join(lines),
            hint="move those files out of the channel, then reindex (publish packages "
            "with `ftforge channel publish`); `ftforge channel audit FILE` shows every "
            "finding")


def recover(channel: Path) -> None:
    """Finish what a crashed publish left: index every package in the subdirs."""
    require_channel(channel)
    with os_errors(channel), channel_lock(channel):
        _clear_staging(channel)
        if not _finish_publish(channel):
            _recover_locked(channel)


def _recover_locked(channel: Path) -> None:
    """Audit the packages the log does not record, finish a written-down removal or
    re-index every subdir and write the page. Lock held."""
    _audit_unlogged(channel)
    try:
        if not _finish_removals(channel):
            _refresh(channel)
    except (ChannelError, OSError):
        raise
    except Exception as exc:  # the indexer rejected a package moved in by an older ftforge
        raise ChannelError(
            f"{channel}: re-indexing failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); the previous index still serves",
            hint=f"`ftforge channel audit {channel}/SUBDIR/*.conda` names the package the "
            "indexer rejects; move that file out of the channel, then reindex") from None


def unfinished_work(channel: Path) -> bool:
    """Whether a publish or a removal left its journal (it was interrupted): the next
    publish, removal or ``reindex`` finishes it."""
    try:
        return _journal(channel).exists() or _removing(channel).exists()
    except OSError:
        return False


def _journal(channel: Path) -> Path:
    return internal_dir(channel) / "publishing.json"


def _write_journal(channel: Path, intent: dict) -> None:
    """Whole or absent (a new name replaced in); synced with the moves, not before them:
    a process killed after a move finds it in the page cache, and after a power cut
    lost with it the moved files are unlisted, which the next publish also finishes."""
    path = _journal(channel)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(intent))
    os.replace(tmp, path)


def _finish_publish(channel: Path) -> bool:
    """Finish a publish killed between its first move and its log line (its journal is
    there): audit every package the log does not record, re-index every subdir, log
    the journaled files still in place with their bytes, drop the journal. Lock held.
    True when there was one to finish."""
    path = _journal(channel)
    if not path.exists():
        return False
    try:
        intent = json.loads(path.read_text())
        files = [(str(e["file"]), str(e["sha256"])) for e in intent["files"]]
        who, recipe = str(intent["by"]), intent["recipe"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ChannelError(f"{path}: an unreadable publish journal (damaged by hand?)",
                           hint=f"delete it, then run `ftforge channel reindex {channel}` "
                           "(it audits and indexes every package the log does not record)"
                           ) from None
    _recover_locked(channel)
    logged = {(r.get("file"), r.get("sha256")) for r in read_log(channel)
              if isinstance(r, dict) and r.get("action") == "publish"}
    subdirs = set(served_subdirs(channel))
    todo = [(rel, digest) for rel, digest in files
            if rel.count("/") == 1 and rel.split("/")[0] in subdirs
            and rel.split("/")[1].endswith(PACKAGE_SUFFIXES) and (channel / rel).is_file()
            and (rel, digest) not in logged and sha256_of(channel / rel) == digest]
    if todo:
        _log(channel, *({"action": "publish", "file": rel, "sha256": digest,
                         "recipe": recipe if isinstance(recipe, str) else None, "by": who,
                         "recovered": True} for rel, digest in todo))
    path.unlink()
    return True


def _listing_differs(channel: Path, existing: list[dict]) -> bool:
    """True when a served subdir holds package files other than those its index lists
    (``existing``: the channel's records). One directory read per subdir."""
    listed: dict[str, set[str]] = {}
    for record in existing:
        listed.setdefault(str(record["subdir"]), set()).add(str(record["fn"]))
    for subdir in served_subdirs(channel):
        if not (channel / subdir).is_dir():  # noarch, before a first publish
            names: set[str] = set()
        else:
            with os.scandir(channel / subdir) as entries:
                names = {e.name for e in entries if e.name.endswith(PACKAGE_SUFFIXES)}
        if names != listed.get(subdir, set()):
            return True
    return False


def remove(
    filenames: Iterable[str],
    channel: Path,
    *,
    reason: str,
    by: str | None = None,
    recipe: str | None = None,
    token: str | None = None,
) -> RemoveResult:
    """Take packages out of the index; the files are kept under ``.ftforge/removed``.

    Only the owning recipe (with its token) may remove a package, and a GIL build
    whose free-threaded twin stays is refused (remove both in one call). The
    removal is written down first (``.ftforge/removing.json``), then the index
    stops listing the files, then they move away: a crash at any point is
    finished by the next publish, remove or ``channel reindex``, and no index
    ever lists a file that is gone. A removed file name is never published again.
    """
    channel = Path(channel)
    filenames = [Path(n).name for n in filenames]
    if not reason.strip():
        raise ChannelError("a removal needs a reason", hint="pass --reason '...'")
    require_channel(channel)
    for name in filenames:
        package_stem(name)
    with os_errors(channel), channel_lock(channel):
        _finish_publish(channel)
        _finish_removals(channel)
        records = channel_records(channel)
        by_file = {f"{r['subdir']}/{r['fn']}": r for r in records}
        found = []
        for name in filenames:
            matches = [f"{sub}/{name}" for sub in served_subdirs(channel)
                       if (channel / sub / name).is_file()]
            if not matches:
                raise ChannelError(
                    f"{name} is not published in {channel}",
                    hint=f"the channel's page ({channel / 'index.html'}) and each subdir's "
                    "repodata.json list what is published")
            found.extend(matches)
        names = [str(by_file[f].get("name")) for f in found if f in by_file]
        require_owner(channel, names, recipe, token)
        gone = {Path(f).name for f in found}
        before = {v.fn for v in missing_twins(records)}
        broken = [v for v in missing_twins(records, str(channel), without=gone)
                  if v.fn not in before]
        if broken:
            raise ChannelError(
                f"{channel}: removing {', '.join(sorted(gone))} would leave "
                + "; ".join(f"{v.fn} without its GIL twin" for v in broken),
                hint="remove the free-threaded builds in the same call, or keep the GIL build")
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
    try:
        intent = json.loads(path.read_text())
        files = [f for f in intent["files"] if isinstance(f, str) and "/" in f
                 and not f.startswith("/") and ".." not in f.split("/")
                 and (channel / f).is_file()]
        intent["by"], intent["reason"], intent["stamp"]  # noqa: B018 -- all three must exist
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ChannelError(f"{path}: an unreadable removal record (damaged by hand?)",
                           hint="delete it if no removal was running, then run the command "
                           "again") from None
    touched = {Path(f).parent.name for f in files}
    reindex(channel, subdirs=touched, exclude={Path(f).name for f in files})
    kept = []
    for rel in files:
        source = channel / rel
        keep = internal_dir(channel) / "removed" / intent["stamp"] / rel
        keep.parent.mkdir(parents=True, exist_ok=True)
        _log(channel, {"action": "remove", "file": rel, "sha256": sha256_of(source),
                       "by": intent["by"], "reason": intent["reason"],
                       "kept_at": str(keep.relative_to(channel))})
        os.replace(source, keep)
        kept.append(keep)
    _refresh(channel, touched)
    path.unlink()
    return kept
