"""The record writer against py-rattler's index_fs on real rattler-build packages.

The unit tests compare the two writers on synthetic packages; here the packages
are the interpreter (both ABIs), python_abi, pip and its backend as built for
every channel: real ``index.json`` fields, ``run_exports.json``, ``.conda``
archives written by rattler-build. A first index of each subdir, then the same
packages added a few at a time to a half-indexed subdir: ``repodata.json`` must
be the same bytes.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
from pathlib import Path

import pytest

from ftforge.channel import repodata as writer
from ftforge.channel.audit import audit_package

pytestmark = pytest.mark.integration


def _index_fs(root: Path, subdir: str, force: bool) -> None:
    from rattler import Subdir
    from rattler.index import index_fs

    asyncio.run(index_fs(root, target_platform=Subdir(subdir), write_zst=False,
                         write_shards=True, force=force))


def _moment(repodata: bytes, fn: str) -> datetime.datetime:
    record = json.loads(repodata)[writer._section(fn)][fn]
    return datetime.datetime.fromtimestamp(record["indexed_timestamp"] / 1000, datetime.UTC)


def test_record_writer_matches_index_fs_on_built_packages(tmp_path, interpreter_packages):
    audited = {p.name: (p, audit_package(p).record) for p in interpreter_packages}
    assert all(record is not None for _, record in audited.values())
    assert any(record.run_exports for _, record in audited.values())  # python has some
    by_subdir: dict[str, list[str]] = {}
    for name, (_, record) in sorted(audited.items()):
        by_subdir.setdefault(record.subdir, []).append(name)
    for subdir, names in by_subdir.items():
        # a first index
        theirs, ours = tmp_path / subdir / "theirs", tmp_path / subdir / "ours"
        for root in (theirs, ours):
            for sub in {"noarch", subdir}:
                (root / sub).mkdir(parents=True)
            for name in names:
                shutil.copyfile(audited[name][0], root / subdir / name)
        _index_fs(theirs, subdir, force=True)
        raw = (theirs / subdir / "repodata.json").read_bytes()
        folder = ours / subdir
        assert writer.extend(folder, subdir, [(folder / n, audited[n][1]) for n in names],
                             first=True, now=_moment(raw, names[0])) is not None
        assert (folder / "repodata.json").read_bytes() == raw
        # half indexed by index_fs, the rest added two at a time
        half, rest = names[: len(names) // 2], names[len(names) // 2:]
        theirs, ours = tmp_path / subdir / "theirs2", tmp_path / subdir / "ours2"
        for sub in {"noarch", subdir}:
            (theirs / sub).mkdir(parents=True)
        for name in half:
            shutil.copyfile(audited[name][0], theirs / subdir / name)
        _index_fs(theirs, subdir, force=True)
        shutil.copytree(theirs, ours)
        for start in range(0, len(rest), 2):
            batch = rest[start:start + 2]
            for name in batch:
                for root in (theirs, ours):
                    shutil.copyfile(audited[name][0], root / subdir / name)
            _index_fs(theirs, subdir, force=False)
            raw = (theirs / subdir / "repodata.json").read_bytes()
            folder = ours / subdir
            assert writer.extend(folder, subdir, [(folder / n, audited[n][1]) for n in batch],
                                 now=_moment(raw, batch[0])) is not None
            assert (folder / "repodata.json").read_bytes() == raw, batch
