"""The browsable channel page: ``index.html`` next to the index, from repodata.

Every package, each of its builds with the ABI marked (free-threaded, GIL,
noarch), and its dependencies. Static HTML, no scripts, escaped throughout.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from pathlib import Path

from ..atomic import write_atomic
from ..variants import variant_of_package
from .index import channel_records

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


def render(channel: Path, title: str | None = None, records: list[dict] | None = None) -> str:
    """The page; ``records``: the channel's records when the caller has them already."""
    if records is None:
        records = channel_records(channel)
    stress = _StressRecords(channel)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_name[record["name"]].append(record)
    e = html.escape
    title = title or f"ftforge channel {channel.name}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p id='summary'>{len(by_name)} packages, {len(records)} files. "
        "Builds marked <span class='abi ft'>free-threaded</span> need the free-threaded "
        "interpreter (<code>python-freethreading</code>); "
        "<span class='abi gil'>GIL</span> builds need the default one.</p>",
    ]
    for name in sorted(by_name):
        parts.append(f"<h2 id='{e(name)}'>{e(name)}</h2><table><tr><th>version</th>"
                     "<th>build</th><th>ABI</th><th>subdir</th><th>depends</th>"
                     "<th>thread-safety (ftforge stress)</th></tr>")
        rows = sorted(by_name[name], key=lambda r: (r["version"], r["build"]), reverse=True)
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
    parts.append("</body></html>\n")
    return "".join(parts)


class _StressRecords:
    """The stress records (stored beside packages by ``ftforge stress``) of a channel:
    each subdir's folder is listed once, and only a record that is there is read."""

    def __init__(self, channel: Path) -> None:
        self.channel = channel
        self.present: dict[str, frozenset[str]] = {}

    def _listed(self, subdir: str) -> frozenset[str]:
        if subdir not in self.present:
            from ..stress import RECORD_SUFFIX

            try:
                with os.scandir(self.channel / subdir) as entries:
                    names = frozenset(e.name for e in entries if e.name.endswith(RECORD_SUFFIX))
            except OSError:
                names = frozenset()
            self.present[subdir] = names
        return self.present[subdir]

    def cell(self, record: dict) -> str:
        """The package's stress result, or a dash."""
        from ..stress import read_record

        stored = None
        if self._listed(str(record["subdir"])):
            stored = read_record(self.channel, record["subdir"], record["fn"])
        if stored is None:
            return "<td class='stress'>—</td>"
        return (f"<td class='stress stress-{html.escape(stored.status)}'>"
                f"{html.escape(stored.summary())}</td>")


def write_page(channel: Path, records: list[dict] | None = None) -> Path:
    return write_atomic(channel / "index.html", render(channel, records=records))
