"""Write generated recipe files, or check committed ones for drift."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..atomic import write_atomic
from ..errors import RecipeDriftError

__all__ = ["check_files", "diff_files", "write_files"]


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
    """Write every file atomically (temp file + rename); scripts keep their executable bit."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        written.append(write_atomic(target / name, text,
                                    mode=0o755 if name.endswith(".sh") else 0o644))
    return written
