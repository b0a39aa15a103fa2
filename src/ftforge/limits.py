"""Every size and time limit ftforge applies to input it did not make, in one place.

Each limit is a named field with its default and what crossing it means; the
README's "Limits" section is made from these docstrings. Modules take a limits
object as a keyword argument (tests pass smaller ones) instead of reading
constants of their own.

Sections:

- :class:`ArchiveLimits` -- conda packages read by the channel audit.
- :class:`SourceLimits` -- sdists, index documents and downloads (PyPI reader).
- :class:`RecipeLimits` -- feedstock recipes rendered by the migration bot.
- :class:`ServeLimits` -- HTTP clients of ``channel serve``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ArchiveLimits", "RecipeLimits", "ServeLimits", "SourceLimits"]


@dataclass(frozen=True)
class ArchiveLimits:
    """Conda packages (``.conda`` / ``.tar.bz2``) read by ``channel audit`` and ``publish``.

    Crossing any of these refuses the package with a finding naming the member;
    the audit stops reading at the header that crosses it (nothing is expanded).
    """

    max_total_bytes: int = 4 << 30
    """Uncompressed size of every regular member together (default 4 GiB)."""
    max_members: int = 200_000
    """Members (files, links, directories) across both components (default 200,000)."""
    max_header_bytes: int = 1 << 20
    """One PAX / GNU long-name header's payload, which tar readers hold in memory
    (default 1 MiB; real ones are a few hundred bytes)."""
    max_metadata_bytes: int = 64 << 20
    """One metadata file held in memory: ``metadata.json``, ``info/index.json``,
    ``info/paths.json`` (default 64 MiB; other ``info/`` files are hashed, not held)."""
    max_tar_padding_bytes: int = 1 << 20
    """Zero bytes allowed after a tar's end marker inside a component (default 1 MiB; a
    blocking factor of 20 pads to 10 KiB); any other byte there is refused."""
    max_dynamic_symbols: int = 1 << 20
    """Dynamic symbols read from one ELF object (default 1,048,576; real libraries have
    fewer than 100,000); more and the object is refused."""
    max_link_hops: int = 40
    """Symlinks followed while resolving one path (default 40, Linux's own limit; a loop
    is refused)."""


@dataclass(frozen=True)
class SourceLimits:
    """sdists, PyPI index documents and downloads (``recipe pypi``).

    Crossing one refuses the sdist or the index document with an error naming
    the file and the setting; nothing is written.
    """

    max_index_bytes: int = 64 << 20
    """One PyPI JSON project document (default 64 MiB; numpy's is about 10 MiB)."""
    max_sdist_bytes: int = 512 << 20
    """One downloaded sdist, compressed (default 512 MiB)."""
    download_seconds: float = 600.0
    """Wall time of one download, however slowly the server trickles (default 600 s)."""
    max_members: int = 100_000
    """Members of one sdist archive (default 100,000)."""
    max_unpacked_bytes: int = 2 << 30
    """Uncompressed size of an sdist's members together, checked before it is read or
    unpacked; also the largest file the sandboxed backend may write (default 2 GiB)."""
    max_header_bytes: int = 1 << 20
    """One tar PAX / GNU long-name header's payload (default 1 MiB)."""
    max_metadata_bytes: int = 4 << 20
    """One text file read from an sdist: ``PKG-INFO``, ``pyproject.toml``, ``setup.py``
    (default 4 MiB; a longer one is refused, not cut)."""
    backend_seconds: float = 600.0
    """Wall time of one sandboxed PEP 517 hook call (default 600 s)."""
    backend_memory_bytes: int = 2 << 30
    """Address space of each sandboxed PEP 517 backend process (default 2 GiB)."""


@dataclass(frozen=True)
class RecipeLimits:
    """Feedstock recipes (``meta.yaml`` / ``recipe.yaml``) read by the migration bot.

    Crossing one makes that feedstock a ``bot-error`` whose reason names the
    file and the setting; the rest of the plan goes on. Recipes are rendered
    in a worker process that holds the time and memory limits.
    """

    max_recipe_bytes: int = 1 << 20
    """One ``meta.yaml`` / ``recipe.yaml`` file (default 1 MiB; big real ones are ~30 KB)."""
    render_seconds: float = 10.0
    """Wall time to read one feedstock's recipe (default 10 s; a real one takes ~5 ms)."""
    render_memory_bytes: int = 1 << 30
    """Address space of the render worker (default 1 GiB)."""
    max_rendered_chars: int = 4 << 20
    """Text one Jinja template may produce, and the longest string or list ``*`` may
    build (default 4 Mi); ``**`` may not build a number over 64 Kibit. What ``~`` and
    filters build is bounded by ``render_memory_bytes``."""
    max_loop_items: int = 100_000
    """Items of one ``range()`` (default 100,000); loops nested inside each other are
    bounded by ``render_seconds``."""
    max_yaml_nodes: int = 1_000_000
    """YAML nodes after aliases are expanded (default 1,000,000; a billion-laughs
    document is refused here)."""
    max_selector_chars: int = 1_000
    """One ``# [selector]`` or ``if:`` expression (default 1,000 characters)."""



@dataclass(frozen=True)
class ServeLimits:
    """HTTP clients of ``ftforge channel serve`` (loopback, local use)."""

    connection_timeout_seconds: float = 30.0
    """A connection that sends or reads nothing for this long is closed (default 30 s)."""
    max_connections: int = 64
    """Connections served at once; one more is closed at once, so idle clients cannot
    pile up threads (default 64)."""

def _human(name: str, value: object) -> str:
    if name.endswith("_bytes") and isinstance(value, int):
        for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
            if value >= 1 << shift and value % (1 << shift) == 0:
                return f"{value >> shift} {unit}"
        return f"{value} B"
    if name.endswith("_seconds"):
        return f"{value:g} s"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown() -> str:
    """The README's "Limits" table, from the fields and their docstrings above."""
    import ast
    import dataclasses
    import inspect

    tree = ast.parse(inspect.getsource(inspect.getmodule(markdown)))
    lines = ["| setting | default | what it bounds |", "|---|---|---|"]
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in __all__:
            continue
        defaults = {f.name: f.default for f in dataclasses.fields(globals()[node.name])}
        body = node.body
        for field_node, doc in zip(body, [*body[1:], None]):
            if not isinstance(field_node, ast.AnnAssign):
                continue
            name = field_node.target.id  # type: ignore[union-attr]
            text = (doc.value.value if isinstance(doc, ast.Expr)
                    and isinstance(doc.value, ast.Constant) else "")
            text = " ".join(str(text).split()).replace("``", "`").replace("|", "\\|")
            lines.append(f"| `{node.name}.{name}` | {_human(name, defaults[name])} | {text} |")
    return "\n".join(lines)
