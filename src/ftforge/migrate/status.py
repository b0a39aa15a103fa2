"""``ftforge migrate status``: the plan as JSON and as a static page like
conda-forge's migration status (categories, reasons, and the dependency graph
drawn in SVG by dependency generation). No scripts; everything escaped."""

from __future__ import annotations

import html
import json
from pathlib import Path

import networkx as nx

from .plan import CATEGORIES, Plan

__all__ = ["render_status", "write_status"]

COLOURS = {"done": "#2e7d32", "branch-made": "#00838f", "ready": "#1565c0",
           "awaiting-parents": "#f9a825", "awaiting-migrators": "#ef6c00",
           "not-solvable": "#6d4c41", "local-changes": "#7b1fa2", "bot-error": "#c62828",
           "not-needed": "#9e9e9e"}


def _svg(plan: Plan) -> str:
    graph = plan.graph
    layers = list(nx.topological_generations(graph)) if nx.is_directed_acyclic_graph(graph) \
        else [sorted(graph.nodes)]
    pos = {}
    for x, layer in enumerate(layers):
        for y, name in enumerate(sorted(layer)):
            pos[name] = (40 + x * 220, 30 + y * 46)
    width = 80 + 220 * max(len(layers), 1)
    height = 60 + 46 * max((len(layer) for layer in layers), default=1)
    e = html.escape
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "role='img' aria-label='dependency graph'>",
             "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' "
             "markerHeight='6' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#777'/>"
             "</marker></defs>"]
    for parent, child in graph.edges:
        (x1, y1), (x2, y2) = pos[parent], pos[child]
        parts.append(f"<line x1='{x1 + 170}' y1='{y1 + 12}' x2='{x2}' y2='{y2 + 12}' "
                     "stroke='#999' marker-end='url(#arrow)'/>")
    for name, (x, y) in pos.items():
        colour = COLOURS.get(plan.feedstocks[name].category, "#000")
        parts.append(f"<g class='node' data-name='{e(name)}'><rect x='{x}' y='{y}' width='170' "
                     f"height='24' rx='5' fill='{colour}'/><text x='{x + 8}' y='{y + 16}' "
                     f"fill='white' font-size='12'>{e(name)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def render_status(plan: Plan) -> str:
    e = html.escape
    groups = plan.by_category()
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Migration {e(plan.migration)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
        "h2{font-size:1.1rem;margin-top:1.6rem} .pill{display:inline-block;color:white;"
        "border-radius:1rem;padding:.1rem .6rem;font-size:.8rem;font-weight:600}"
        "td{padding:.25rem .6rem;border-bottom:1px solid #eee;vertical-align:top}"
        "table{border-collapse:collapse} .summary span{margin-right:1rem}",
        "</style></head><body>",
        f"<h1>Migration <code>{e(plan.migration)}</code></h1><p class='summary'>",
    ]
    for category in CATEGORIES:
        parts.append(f"<span id='count-{category}'><span class='pill' style='background:"
                     f"{COLOURS[category]}'>{category}</span> {len(groups[category])}</span>")
    parts.append(f"</p><p id='migration-file'>Migration file: {e(plan.migration_origin)}"
                 + (f" (ftforge's own, use_local, migrator_ts {plan.migrator_ts})"
                    if plan.migration_origin == "ftforge" else "")
                 + (f"; waits for: {e(', '.join(plan.wait_for_migrators))}"
                    if plan.wait_for_migrators else "") + "</p>")
    parts.append(f"<p>Order: {' → '.join(e(n) for n in plan.order)}</p>")
    parts.append(f"<h2>Dependency graph</h2>{_svg(plan)}")
    for category in CATEGORIES:
        if not groups[category]:
            continue
        parts.append(f"<h2 id='{category}'>{category} ({len(groups[category])})</h2><table>")
        for name in groups[category]:
            state = plan.feedstocks[name]
            parents = ", ".join(e(p) for p in state.parents) or "—"
            branch = (f"<td class='branch'>branch <code>{e(state.branch)}</code>"
                      + (f", PR body <code>{e(state.pr_body)}</code>" if state.pr_body else "")
                      + "</td>") if state.branch else "<td></td>"
            parts.append(f"<tr data-feedstock='{e(name)}'><td><b>{e(name)}</b></td>"
                         f"<td>{e(state.reason)}</td><td>parents: {parents}</td>{branch}</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_status(plan: Plan, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{plan.migration}.json"
    json_path.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
    html_path = out_dir / f"{plan.migration}.html"
    html_path.write_text(render_status(plan))
    return json_path, html_path
