"""Where a build's seconds go: a timestamped record of rattler-build's events, read into phases.

The driver's progress callback writes ``build.timeline.tsv`` next to ``build.log``:
one line per step or log event, ``<seconds since start>\t<kind>\t<first line of text>``.
``phases`` reads it back and charges the time between two events to the phase the
earlier one opened, so a slow phase shows however many lines it logged; a line that
only says a step is done (``Copying done!`` after rattler-build collected and copied
the new files, silently) takes the gap before it for its own phase.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

__all__ = ["CLOSERS", "PHASES", "TIMELINE_FILE", "Timeline", "phases", "read_timeline"]

TIMELINE_FILE = "build.timeline.tsv"

# (phase, pattern of the log line that opens it). The first matching pattern wins;
# a line matching none continues the phase that is open.
PHASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("source", re.compile(r"^(Fetching source|Downloading from|Copying source|Extracting|"
                          r"Applying patch)")),
    ("environments", re.compile(r"^(Resolving (build|host) environment|Installing (build|host) "
                                r"environment|\s*Platform: |Could not find \S*repodata|"
                                r"Writing repodata)")),
    ("script", re.compile(r"^(Running build script|Build script|\+ )")),
    ("post-process", re.compile(r"^(Packaging new files|Post-processing|Relink|Fixing |"
                                r"Linking check|Checking linkage|Found \d+ new files|"
                                r"Copying done|Finding )")),
    ("archive", re.compile(r"^(Creating (the )?(package|archive)|Compressing|Writing package)")),
    # rattler-build's content tests and, unless keep_build, its removal of the build folder
    ("after-archive", re.compile(r"^(Archive written|Checking for symlinks)")),
    ("index", re.compile(r"^(Adding \d+ packages|Successfully added|Indexing)")),
    ("tests", re.compile(r"^(Running tests?|Testing)")),
    ("cleanup", re.compile(r"^(Removing the work directories|Work directories removed)")),
)

# (phase, pattern of a line that closes a silent step): the gap before it is that phase's.
CLOSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("post-process", re.compile(r"^Copying done!")),
)


class Timeline:
    """Append-only timeline file; ``mark`` stamps one event with the seconds since creation."""

    def __init__(self, path: Path) -> None:
        self.started = time.monotonic()
        self.handle = path.open("a")

    def mark(self, kind: str, text: str) -> None:
        first = (text.strip().splitlines() or [""])[0].replace("\t", " ")
        self.handle.write(f"{time.monotonic() - self.started:.3f}\t{kind}\t{first}\n")

    def close(self) -> None:
        self.handle.close()


def read_timeline(path: Path) -> list[tuple[float, str, str]]:
    """The events of a timeline file; a line that is not ``seconds<TAB>kind<TAB>text`` is skipped."""
    events: list[tuple[float, str, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        try:
            stamp = float(parts[0])
        except ValueError:
            continue
        events.append((stamp, parts[1], parts[2]))
    return events


def _phase_of(text: str) -> str | None:
    return next((name for name, pattern in PHASES if pattern.search(text)), None)


def phases(events: list[tuple[float, str, str]]) -> dict[str, float]:
    """Seconds per phase, in the order phases first appear; time before the first
    recognised line is ``start``."""
    totals: dict[str, float] = {}
    current = "start"
    previous = 0.0
    for stamp, _kind, text in events:
        closed = next((name for name, pattern in CLOSERS if pattern.search(text)), None)
        charged = closed or current
        totals[charged] = totals.get(charged, 0.0) + max(0.0, stamp - previous)
        previous = stamp
        current = _phase_of(text) or current
    totals.setdefault(current, 0.0)
    return {name: round(seconds, 3) for name, seconds in totals.items() if seconds or name != "start"}
