"""Every limit is a named setting with a documented default, and the README says so."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ftforge import limits

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- limits: begin -->", "<!-- limits: end -->"


def test_every_limit_has_a_docstring_naming_its_default():
    rows = limits.markdown().splitlines()[2:]
    count = sum(len(dataclasses.fields(getattr(limits, n))) for n in limits.__all__)
    assert len(rows) == count > 20
    for row in rows:
        setting, default, text = (c.strip() for c in row.strip("|").split(" | "))
        assert text, f"{setting}: no docstring"
        assert "default" in text.lower(), f"{setting}: the docstring does not state the default"


def test_the_readme_table_is_the_generated_one():
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    current, _, tail = rest.partition(END)
    table = limits.markdown()
    if os.environ.get("FTFORGE_UPDATE_DOCS") == "1":
        README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
        return
    assert current.strip() == table, "README.md's Limits table is stale: FTFORGE_UPDATE_DOCS=1"
