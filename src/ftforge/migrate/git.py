"""The few git operations the migration bot needs, on a feedstock checkout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import FtforgeError

__all__ = ["DEFAULT_BRANCHES", "default_branch", "exists", "git", "git_ok", "has_branch",
           "is_dirty", "read_tree_files"]


def _run(repo: Path, args: tuple[str, ...], env: dict | None,
         input: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, check=False)


def git(repo: Path, *args: str, env: dict | None = None, input: str | None = None) -> str:
    """Run git in ``repo``; its stdout, or an error naming the repository."""
    result = _run(repo, args, env, input)
    if result.returncode != 0:
        raise FtforgeError(f"{repo}: git {' '.join(args[:2])} failed: {result.stderr.strip()}",
                           hint="check the feedstock's git repository")
    return result.stdout


def git_ok(repo: Path, *args: str) -> bool:
    """Whether a git query (``cat-file -e``, ``rev-parse --verify``) succeeds."""
    return _run(repo, args, None, None).returncode == 0


def has_branch(repo: Path, name: str) -> bool:
    return git_ok(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}")


DEFAULT_BRANCHES = ("main", "master")
"""Looked for in this order; a repository with neither uses its checked-out branch."""


def exists(repo: Path, *objects: str) -> list[bool]:
    """Whether each object (``refs/heads/main``, ``main:path``) exists: one git call."""
    out = git(repo, "cat-file", "--batch-check", input="".join(f"{o}\n" for o in objects))
    return [not line.endswith(" missing") for line in out.splitlines()]


def default_branch(repo: Path) -> str:
    for name in DEFAULT_BRANCHES:
        if has_branch(repo, name):
            return name
    return git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()


def is_dirty(repo: Path) -> bool:
    return bool(git(repo, "status", "--porcelain").strip())


def read_tree_files(repo: Path, ref: str, *pathspecs: str,
                    max_bytes: int = 1 << 20) -> dict[str, str]:
    """Every file under ``pathspecs`` at ``ref``, path -> text: one ``ls-tree`` and one
    ``cat-file --batch`` whatever the number of files. A file over ``max_bytes`` is an
    error naming it (these are configuration files, a few KB each)."""
    listing = git(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", ref, "--", *pathspecs)
    entries = []
    for item in listing.split("\0"):
        if not item:
            continue
        meta, _tab, path = item.partition("\t")
        mode, kind, sha, size = meta.split()
        if kind == "blob" and mode in ("100644", "100755"):
            if int(size) > max_bytes:
                raise FtforgeError(f"{repo}: {path} at {ref} is {size} bytes, over the "
                                   f"{max_bytes}-byte limit for a configuration file",
                                   hint="check the feedstock's git repository")
            entries.append((path, sha))
    if not entries:
        return {}
    result = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"],
                            input="".join(f"{sha}\n" for _p, sha in entries).encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise FtforgeError(f"{repo}: git cat-file failed: {result.stderr.decode(errors='replace')}",
                           hint="check the feedstock's git repository")
    out, data, pos = {}, result.stdout, 0
    for path, _sha in entries:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        body = data[header_end + 1:header_end + 1 + size]
        out[path] = body.decode("utf-8", errors="replace")
        pos = header_end + 1 + size + 1
    return out
