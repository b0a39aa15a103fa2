"""``ftforge explain``: turn an unsolvable request into the ABI story.

A solver says "python_abi 3.13.* *_cp313t cannot be installed because ...";
a user needs to hear which package is built for which interpreter, what the
environment has, and what to do. This module looks the requested names up in
the channels (py-rattler's gateway), sorts every candidate by interpreter ABI
(:mod:`ftforge.variants`), and says it in one sentence per package.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .variants import PythonVariant, abi_pin, variant_of_package

__all__ = ["Candidate", "explain", "requested_abi"]


@dataclass(frozen=True)
class Candidate:
    name: str
    version: str
    build: str
    channel: str
    variant: PythonVariant | None  # None: noarch / no interpreter ABI


def _channel_name(channel: str) -> str:
    return Path(channel.rstrip("/")).name or channel


def requested_abi(specs: Sequence[str]) -> PythonVariant | None:
    """The interpreter ABI a request names, if any (``python-freethreading``,
    ``python_abi=*=*_cp313t``, ``python=3.13.*=*_cp313t``, ``python[build=*_cp313t]``,
    ``python-gil``)."""
    from .environments import normalize_spec

    for spec in specs:
        # conda's name=version=build shorthand, then py-rattler's parser (variants.abi_pin)
        variant = abi_pin(normalize_spec(spec))
        if variant is not None:
            return variant
    return None


def _label(variant: PythonVariant) -> str:
    return f"{variant.abi_tag} ({'free-threaded' if variant.freethreaded else 'GIL'})"


def _candidates(channels: Sequence[str], names: Sequence[str]) -> list[Candidate]:
    from rattler import Channel

    from .environments import _gateway, channel_url

    async def query():
        gateway = _gateway([channel_url(c) for c in channels])
        out = []
        for channel in channels:
            per_spec = await gateway.query([Channel(channel_url(channel))],
                                           ["linux-64", "noarch"], list(names), recursive=False)
            for records in per_spec:
                for r in records:
                    out.append(Candidate(r.name.normalized, str(r.version), str(r.build),
                                         _channel_name(channel),
                                         variant_of_package(list(r.depends), str(r.build))))
        return out

    return asyncio.run(query())


def explain(specs: Sequence[str], channels: Sequence[str], *,
            environment: tuple[str, PythonVariant] | None = None,
            priority: str | None = None) -> list[str]:
    """One sentence per requested package that has no build for the wanted ABI.

    ``environment``: (python version, ABI) of an existing environment; otherwise
    the ABI is read from the request itself. ``priority="strict"`` also names a
    package whose builds for the wanted ABI are hidden by an earlier channel.
    """
    wanted = environment[1] if environment else requested_abi(specs)
    has = (f"this environment has python {environment[0]} {_label(wanted)}" if environment
           else f"the request asks for {_label(wanted)}" if wanted else None)
    # the package name of `name=ver=build`, `name ver build` and `name[build=...]` alike
    names = [m[0] for s in specs if (m := re.match(r"[A-Za-z0-9_.\-]+", s.strip()))]
    names = [n for n in names if n not in ("python", "python_abi",
                                           PythonVariant.ft().metapackage,
                                           PythonVariant.gil().metapackage)]
    lines = []
    conflict = _conflicting_abis(specs)
    if conflict:
        lines.append(conflict)
    if wanted is None:
        return lines
    # one query to the channels serves both questions
    queried = ["python_abi", *names] if priority == "strict" else names
    candidates = _candidates(channels, queried) if queried else []
    if priority == "strict":
        lines += _hidden_by_strict_priority(queried, candidates, channels, wanted)
    for name in names:
        mine = [c for c in candidates if c.name == name]
        if not mine:
            lines.append(f"{name} is in none of the channels {', '.join(channels)}.")
            continue
        if any(c.variant is None or c.variant == wanted for c in mine):
            continue
        newest = max(mine, key=lambda c: _version_key(c.version))
        others = sorted({_label(c.variant) for c in mine if c.variant})
        where = f"{name} {newest.version} in channel {newest.channel} is built for " + \
            " and ".join(others)
        advice = (f"Install {PythonVariant(wanted.series, not wanted.freethreaded).metapackage}"
                  " into a new environment" if environment else
                  f"Ask for {PythonVariant(wanted.series, not wanted.freethreaded).metapackage}")
        if wanted.freethreaded:
            fix = (f"{advice}, or build a free-threaded one "
                   f"(`ftforge recipe pypi {name}` then `ftforge build`).")
        else:
            fix = f"{advice}, or use the base channel's build."
        lines.append(f"{where}; {has}. {fix}")
    return lines


def _hidden_by_strict_priority(names: Sequence[str], candidates: Sequence[Candidate],
                               channels: Sequence[str], wanted: PythonVariant) -> list[str]:
    """Strict priority takes every build of a name from the first channel that has
    it: say so when that channel has none for ``wanted`` and a later one does."""
    order = [_channel_name(c) for c in channels]
    lines = []
    for name in dict.fromkeys(names):
        mine = [c for c in candidates if c.name == name and c.variant is not None]
        present = [ch for ch in order if any(c.channel == ch for c in mine)]
        if not present:
            continue
        first = present[0]
        if any(c.channel == first and c.variant == wanted for c in mine):
            continue
        later = [ch for ch in present[1:]
                 if any(c.channel == ch and c.variant == wanted for c in mine)]
        if later:
            lines.append(
                f"With strict channel priority every {name} comes from channel {first}, the "
                f"first that has it, and {first} has no {_label(wanted)} build; channel "
                f"{later[0]} has one. List {later[0]} first, or use flexible priority.")
    return lines


def _conflicting_abis(specs: Sequence[str]) -> str | None:
    seen = {}
    for spec in specs:
        abi = requested_abi([spec])
        if abi is not None:
            seen.setdefault(abi, spec)
    if len(seen) > 1:
        parts = [f"'{spec}' needs {_label(abi)}" for abi, spec in sorted(seen.items())]
        return ("; ".join(parts) + ". One environment holds one interpreter ABI: "
                "ask for one of them.")
    return None


def _version_key(version: str):
    from rattler import Version

    return Version(version)
