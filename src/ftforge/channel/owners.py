"""Which recipe (feedstock) may publish which package names: ``owners.yaml``.

Like conda-forge's feedstock-outputs: the first recipe to publish a name
registers it; after that only that recipe may publish it. The file is plain
YAML at the channel root (``package-name: recipe-name``), edited by hand to
transfer a name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_atomic
from ..errors import ChannelError

__all__ = ["OWNERS_FILE", "OwnershipRefused", "check_owners", "load_owners"]

OWNERS_FILE = "owners.yaml"


class OwnershipRefused(ChannelError):
    """A package name belongs to another recipe."""


@dataclass(frozen=True)
class Claim:
    package: str
    recipe: str


def load_owners(channel: Path) -> dict[str, str]:
    from ruamel.yaml import YAML, YAMLError

    path = channel / OWNERS_FILE
    if not path.exists():
        return {}
    try:
        data = YAML(typ="safe").load(path.read_text())
    except YAMLError as exc:
        raise ChannelError(f"{path}: not valid YAML ({exc})".splitlines()[0],
                           hint="fix owners.yaml: one 'package-name: recipe-name' per line") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ChannelError(f"{path}: expected a mapping of package name to recipe name",
                           hint="fix owners.yaml: one 'package-name: recipe-name' per line")
    return dict(data)


def check_owners(channel: Path, names: list[str], recipe: str | None) -> list[Claim]:
    """Refuse names owned by another recipe; return the new claims to register."""
    owners = load_owners(channel)
    refused, new = [], []
    for name in sorted(set(names)):
        owner = owners.get(name)
        if owner is None:
            new.append(Claim(name, recipe or name))
        elif recipe is None or owner != recipe:
            refused.append(f"{name} belongs to recipe '{owner}'"
                           + (f", not '{recipe}'" if recipe else ""))
    if refused:
        raise OwnershipRefused(
            f"{channel / OWNERS_FILE}: " + "; ".join(refused),
            hint="publish from the owning recipe with --recipe NAME, or transfer the name "
            "by editing owners.yaml",
        )
    return new


def register(channel: Path, claims: list[Claim]) -> None:
    if not claims:
        return
    owners = load_owners(channel)
    owners.update({c.package: c.recipe for c in claims})
    path = channel / OWNERS_FILE
    body = "# package name: the recipe (feedstock) allowed to publish it\n" + "".join(
        f"{json.dumps(name)}: {json.dumps(owners[name])}\n" for name in sorted(owners)
    )
    write_atomic(path, body)
