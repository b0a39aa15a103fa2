"""The browsable channel page: ``index.html`` next to the index, from repodata.

Every package, each of its builds with the ABI marked (free-threaded, GIL,
noarch), and its dependencies. Static HTML, no scripts, escaped throughout.

A publish re-renders only the sections of the package names whose records
changed and keeps the others from the page it replaces -- but only when that
page provably is the one rendered from the channel's previous repodata: a
record in ``.ftforge/page.json`` holds the page's sha256, the sha256 of each
``repodata.json`` it was made from, its title and the stress records it
showed. Anything else (a page edited by hand, a crash between two writes, a
new stress record) renders the whole page, as :func:`render` does.
"""

from __future__ import annotations

import bisect
import hashlib
import html
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ..variants import variant_of_package
from .durable import write_atomic_many
from .index import channel_records
from .layout import internal_dir

__all__ = ["abi_of_record", "write_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%} td,th{padding:.3rem .6rem;text-align:left;
border-bottom:1px solid #eee;vertical-align:top;font-size:.9rem}
.abi{display:inline-block;padding:.1rem .5rem;border-radius:.8rem;font-weight:600;
font-size:.8rem}
.ft{background:#d9f2e3;color:#0b6b32}.gil{background:#e4e9f7;color:#243c8f}
.noarch{background:#eee;color:#555} code{font-size:.85rem} .deps{color:#555}
"""


def abi_of_record(record: dict) -> tuple[str, str]:
    """(css class, label): ``("ft", "free-threaded cp313t")``, ``("gil", ...)``, noarch."""
    variant = variant_of_package(record.get("depends", []), record["build"])
    if variant is None:
        return "noarch", f"noarch: {record['noarch']}" if record.get("noarch") else "no python ABI"
    kind = "free-threaded" if variant.freethreaded else "GIL"
    return ("ft" if variant.freethreaded else "gil"), f"{kind} {variant.abi_tag}"


def _header(title: str, names: int, files: int) -> str:
    e = html.escape
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p id='summary'>{names} packages, {files} files. "
        "Builds marked <span class='abi ft'>free-threaded</span> need the free-threaded "
        "interpreter (<code>python-freethreading</code>); "
        "<span class='abi gil'>GIL</span> builds need the default one.</p>",
    ])


_SECTION = "<h2 id='"
"""Where each package's section starts; escaped text never contains it."""
_FOOTER = "</body></html>\n"


def _section(name: str, records: list[dict], stress: _StressRecords) -> str:
    e = html.escape
    parts = [f"{_SECTION}{e(name)}'>{e(name)}</h2><table><tr><th>version</th>"
             "<th>build</th><th>ABI</th><th>subdir</th><th>depends</th>"
             "<th>thread-safety (ftforge stress)</th></tr>"]
    rows = sorted(records, key=lambda r: (r["version"], r["build"]), reverse=True)
    for record in rows:
        css, label = abi_of_record(record)
        deps = ", ".join(e(d) for d in record.get("depends", [])) or "—"
        if record.get("track_features"):
            label += " · down-weighted"
        parts.append(
            f"<tr data-fn='{e(record['fn'])}'><td>{e(record['version'])}</td>"
            f"<td><code>{e(record['build'])}</code></td>"
            f"<td><span class='abi {css}'>{e(label)}</span></td>"
            f"<td>{e(record['subdir'])}</td><td class='deps'>{deps}</td>"
            f"{stress.cell(record)}</tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _by_name(records: list[dict]) -> dict[str, list[dict]]:
    by_name: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_name[record["name"]].append(record)
    return by_name


def _title(channel: Path, title: str | None) -> str:
    return title or f"ftforge channel {channel.name}"


def render(channel: Path, title: str | None = None, records: list[dict] | None = None) -> str:
    """The whole page; ``records``: the channel's records when the caller has them already."""
    if records is None:
        records = channel_records(channel)
    return _render(channel, _title(channel, title), records, _StressRecords(channel))


def _render(channel: Path, title: str, records: list[dict], stress: _StressRecords) -> str:
    by_name = _by_name(records)
    return "".join([_header(title, len(by_name), len(records)),
                    *(_section(name, by_name[name], stress) for name in sorted(by_name)),
                    _FOOTER])


def _changed_names(before: list[dict], after: list[dict], subdirs: set[str]) -> set[str]:
    """Names with a record added, dropped or different in ``subdirs`` (the subdirs
    whose repodata changed; the others' records are the same by their digest)."""
    old = {(r["subdir"], r["fn"]): r for r in before if r["subdir"] in subdirs}
    new = {(r["subdir"], r["fn"]): r for r in after if r["subdir"] in subdirs}
    changed = {r["name"] for key, r in new.items() if old.get(key) != r}
    changed |= {r["name"] for key, r in old.items() if key not in new}
    return changed


def _splice(page: str, title: str, before: list[dict], after: list[dict], subdirs: set[str],
            stress: _StressRecords, changed: set[str] | None = None) -> str | None:
    """The page for ``after`` from ``page`` (rendered from ``before``): the sections of
    names changed in ``subdirs`` rendered, the others copied. None if ``page`` does not
    have the shape ``before`` gives it. ``changed``: the names whose records changed,
    when the caller knows them (else they are found by comparing every record)."""
    if changed is not None:
        return _splice_changed(page, title, before, after, changed, stress)
    changed = _changed_names(before, after, subdirs)
    old_names = sorted({r["name"] for r in before})
    starts = []
    at = page.find(_SECTION)
    while at != -1:
        starts.append(at)
        at = page.find(_SECTION, at + len(_SECTION))
    if len(starts) != len(old_names) or not page.endswith(_FOOTER):
        return None
    ends = starts[1:] + [len(page) - len(_FOOTER)]
    kept: dict[str, str] = {}
    e = html.escape
    for name, start, end in zip(old_names, starts, ends):
        if not page.startswith(f"{_SECTION}{e(name)}'>", start):
            return None
        if name not in changed:
            kept[name] = page[start:end]
    redo: dict[str, list[dict]] = defaultdict(list)
    names = set()
    for record in after:
        names.add(record["name"])
        if record["name"] in changed:
            redo[record["name"]].append(record)
    return "".join([_header(title, len(names), len(after)),
                    *(kept[name] if name in kept else _section(name, redo[name], stress)
                      for name in sorted(names)),
                    _FOOTER])


def _splice_changed(page: str, title: str, before: list[dict], after: list[dict],
                    changed: set[str], stress: _StressRecords) -> str | None:
    """:func:`_splice` when the changed names are known: only their sections are found
    (by their heading, which escaped text cannot spell) and replaced, or inserted
    before the section of the next name; the rest of the page is copied in one piece
    each. None if the page does not have as many sections as ``before`` has names, or
    a section is not where its name sorts."""
    e = html.escape
    old_names = sorted({r["name"] for r in before})
    if page.count(_SECTION) != len(old_names) or not page.endswith(_FOOTER):
        return None
    footer_at = len(page) - len(_FOOTER)
    first = page.find(_SECTION) if old_names else footer_at
    names: set[str] = set()
    redo: dict[str, list[dict]] = defaultdict(list)
    for record in after:
        names.add(record["name"])
        if record["name"] in changed:
            redo[record["name"]].append(record)
    old = set(old_names)
    cuts: list[tuple[int, int, str, str]] = []
    for name in changed:
        if name in old:
            start = page.find(f"{_SECTION}{e(name)}'>")
            if start < first:
                return None
            end = page.find(_SECTION, start + len(_SECTION))
            text = _section(name, redo[name], stress) if name in names else ""
            cuts.append((start, footer_at if end == -1 else end, name, text))
        elif name in names:
            following = bisect.bisect_right(old_names, name)
            at = footer_at
            if following < len(old_names):
                at = page.find(f"{_SECTION}{e(old_names[following])}'>")
                if at < first:
                    return None
            cuts.append((at, at, name, _section(name, redo[name], stress)))
    cuts.sort(key=lambda cut: cut[:3])
    pieces = [_header(title, len(names), len(after))]
    at = first
    for start, end, _name, text in cuts:
        if start < at:
            return None
        pieces += [page[at:start], text]
        at = end
    pieces.append(page[at:])
    return "".join(pieces)


_STATE = "page.json"


def write_page(channel: Path, records: list[dict] | None = None, *,
               digests: dict[str, str] | None = None,
               previous: tuple[list[dict], dict[str, str]] | None = None,
               changed: set[str] | None = None) -> Path:
    """Write ``index.html``. ``records``: the channel's records now (read if None) and
    ``digests``: the sha256 of the ``repodata.json`` files they came from (see
    :func:`ftforge.channel.index.channel_records`). ``previous``: the records and
    digests the channel had before this change, to re-render only what changed;
    ``changed``: the package names whose records differ between the two, when the
    caller knows it (records only added, by :mod:`ftforge.channel.repodata`)."""
    if records is None:
        digests = {}
        records = channel_records(channel, digests=digests)
    title = _title(channel, None)
    stress = _StressRecords(channel)
    state_path = internal_dir(channel) / _STATE
    page = None
    if previous is not None and digests is not None:
        old = _read_state(state_path)
        target = channel / "index.html"
        if old is not None and old.get("title") == title \
                and old.get("repodata") == previous[1] \
                and old.get("stress") == stress.snapshot(previous[1]) and target.is_file():
            current = target.read_bytes()
            if hashlib.sha256(current).hexdigest() == old.get("page"):
                try:
                    moved = {sub for sub in set(digests) | set(previous[1])
                             if digests.get(sub) != previous[1].get(sub)}
                    page = _splice(current.decode("utf-8"), title, previous[0], records,
                                   moved, stress, changed)
                except UnicodeDecodeError:
                    page = None
    if page is None:
        page = _render(channel, title, records, stress)
    data = page.encode("utf-8")
    files: list[tuple[Path, bytes | str]] = [(channel / "index.html", data)]
    if digests is not None:
        state = {"title": title, "repodata": digests, "stress": stress.snapshot(digests),
                 "page": hashlib.sha256(data).hexdigest()}
        internal_dir(channel).mkdir(parents=True, exist_ok=True)
        files.append((state_path, json.dumps(state, sort_keys=True)))
    else:
        state_path.unlink(missing_ok=True)  # the page it described is being replaced
    write_atomic_many(files)  # the page first, then the record of what it shows
    return channel / "index.html"


def _read_state(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class _StressRecords:
    """The stress records (stored beside packages by ``ftforge stress``) of a channel:
    each subdir's folder is listed once, and only a record that is there is read."""

    def __init__(self, channel: Path) -> None:
        self.channel = channel
        self.present: dict[str, frozenset[str]] = {}
        self.stats: dict[str, dict[str, list[int]]] = {}

    def _listed(self, subdir: str) -> frozenset[str]:
        if subdir not in self.present:
            from ..stress import RECORD_SUFFIX

            found: dict[str, list[int]] = {}
            folder = self.channel / subdir
            try:  # names only (a list of str is cheaper than a DirEntry each), then stat
                names = [n for n in os.listdir(folder) if n.endswith(RECORD_SUFFIX)]
            except OSError:
                names = []
            for name in names:
                try:
                    st = os.lstat(folder / name)
                except OSError:
                    continue
                found[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
            self.present[subdir] = frozenset(found)
            self.stats[subdir] = found
        return self.present[subdir]

    def snapshot(self, subdirs: Iterable[str]) -> dict[str, dict[str, list[int]]]:
        """Every stress record file of ``subdirs`` with its size, mtime and inode: if
        any changed, the sections showing them are stale."""
        for subdir in subdirs:
            self._listed(subdir)
        return {sub: self.stats[sub] for sub in sorted(subdirs) if self.stats[sub]}

    def cell(self, record: dict) -> str:
        """The package's stress result, or a dash."""
        stored = None
        if self._listed(str(record["subdir"])):
            from ..stress import read_record

            stored = read_record(self.channel, record["subdir"], record["fn"])
        if stored is None:
            return "<td class='stress'>—</td>"
        return (f"<td class='stress stress-{html.escape(stored.status)}'>"
                f"{html.escape(stored.summary())}</td>")
