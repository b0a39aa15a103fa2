"""Write generated recipe files, or check committed ones for drift.

Names that come from outside (an sdist's ``Name:``, a ``--map`` value) become
directories here, so :func:`recipe_dir` accepts only a conda package name --
one path component, never ``..`` or a separator -- and every write stays
inside the directory the user gave.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ..atomic import write_atomic
from ..errors import FtforgeError, RecipeDriftError

__all__ = ["RecipeOutputError", "check_files", "diff_files", "recipe_dir", "write_files"]

# conda package names: lower-case letters, digits, "_", "-", "."; not starting with "."
_CONDA_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")


class RecipeOutputError(FtforgeError):
    """A recipe directory that cannot or must not be written."""


def recipe_dir(output_dir: Path, name: str) -> Path:
    """``output_dir / name``, after checking that ``name`` is one conda package name
    and ``output_dir`` is (or can become) a directory."""
    if not isinstance(name, str) or len(name) > 200 or not _CONDA_NAME.match(name) \
            or ".." in name:
        raise RecipeOutputError(
            f"{output_dir}: refused to write a recipe directory named {str(name)[:80]!r} "
            "(a conda package name is lower-case letters, digits, '_', '-', '.')",
            hint="the name came from the sdist's PKG-INFO or a --map value; fix or map it")
    for parent in (output_dir, *output_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                raise RecipeOutputError(f"{parent}: exists and is not a directory "
                                        f"(--output-dir {output_dir})",
                                        hint="pass a directory (it is created if missing)")
            break
    target = output_dir / name
    if target.exists() and (target.is_symlink() or not target.is_dir()):
        raise RecipeOutputError(f"{target}: exists and is not a directory",
                                hint="remove it, or pass another --output-dir")
    return target


def diff_files(target: Path, files: dict[str, str]) -> list[str]:
    """Unified diffs between ``files`` and what is on disk in ``target`` (empty: no drift)."""
    diffs: list[str] = []
    for name, text in sorted(files.items()):
        path = target / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        fromfile=f"{path} (committed)",
                        tofile=f"{path} (generated)",
                    )
                )
                or f"{path}: missing\n"
            )
    return diffs


def check_files(target: Path, files: dict[str, str], *, command: str) -> None:
    diffs = diff_files(target, files)
    if diffs:
        raise RecipeDriftError(
            f"{target}: {len(diffs)} file(s) differ from what the generator writes\n"
            + "\n".join(diffs),
            hint=f"regenerate with `{command}` and commit the result",
        )


def write_files(target: Path, files: dict[str, str]) -> list[Path]:
    """Write every file atomically (temp file + rename); scripts keep their executable bit.

    File names are plain names (no separator, no leading dot); nothing is written
    unless all of them are."""
    for name in files:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", name):
            raise RecipeOutputError(f"{target}: refused to write a file named {name[:80]!r}",
                                    hint="generated file names are plain names; report this")
    written = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, text in sorted(files.items()):
            written.append(write_atomic(target / name, text,
                                        mode=0o755 if name.endswith(".sh") else 0o644))
    except OSError as exc:
        raise RecipeOutputError(f"{target}: cannot write the recipe ({exc.strerror or exc})",
                                hint="check that --output-dir is a writable directory") from None
    return written
