"""Which recipe (feedstock) may publish and remove which package names.

Like conda-forge's feedstock-outputs: the first recipe to publish a name
registers it; after that only that recipe may publish or remove it. A recipe
proves who it is with a **token**: the first publish by a recipe mints one
(shown once, to the publisher) and the channel keeps only its sha256
(``.ftforge/recipe-tokens.json``, never served). Knowing a recipe's name is
not enough to publish as it.

``owners.yaml`` at the channel root is the readable map (``package-name:
recipe-name``), edited by hand to transfer a name. Once a channel has owners,
a missing ``owners.yaml`` is an error, not an empty map: deleting it must not
reset every claim. The last good copy is kept in ``.ftforge/owners.last.yaml``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path

from ..errors import ChannelError
from .durable import write_atomic_many
from .layout import internal_dir

__all__ = ["OWNERS_FILE", "Claim", "OwnershipRefused", "check_owners", "load_owners",
           "register", "require_owner"]

OWNERS_FILE = "owners.yaml"
TOKENS_FILE = "recipe-tokens.json"
LAST_OWNERS = "owners.last.yaml"
TOKEN_ENV = "FTFORGE_CHANNEL_TOKEN"
_FIX = "fix owners.yaml: one 'package-name: recipe-name' per line"


class OwnershipRefused(ChannelError):
    """A package name belongs to another recipe, or the recipe's token is wrong."""


@dataclass(frozen=True)
class Claim:
    package: str
    recipe: str


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ChannelError(f"{path}: is a directory, not the owners file",
                           hint=f"remove the directory and restore {OWNERS_FILE}") from None
    except UnicodeDecodeError:
        raise ChannelError(f"{path}: not UTF-8 text", hint=_FIX) from None
    except OSError as exc:
        raise ChannelError(f"{path}: cannot be read ({exc.strerror})",
                           hint="check the file's permissions") from None


def load_owners(channel: Path) -> dict[str, str]:
    from ruamel.yaml import YAML, YAMLError

    path = channel / OWNERS_FILE
    if not path.exists() and not path.is_symlink():
        if (internal_dir(channel) / LAST_OWNERS).exists() or _tokens_path(channel).exists():
            raise ChannelError(
                f"{path}: missing, but this channel has registered owners",
                hint=f"restore it (the last copy is {internal_dir(channel) / LAST_OWNERS}); "
                "a deleted owners file does not reset the claims")
        return {}
    text = _read_text(path)
    fast = _plain_owners(text)
    if fast is not None:
        return fast
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ChannelError(f"{path}: not valid YAML ({exc})".splitlines()[0], hint=_FIX) from None
    except RecursionError:
        raise ChannelError(f"{path}: nested too deeply", hint=_FIX) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ChannelError(f"{path}: expected a mapping of package name to recipe name",
                           hint=_FIX)
    return dict(data)


_PLAIN_LINE = re.compile(r'"([\x20\x21\x23-\x5b\x5d-\x7e]*)": "([\x20\x21\x23-\x5b\x5d-\x7e]*)"')


def _plain_owners(text: str) -> dict[str, str] | None:
    """The owners file as :func:`register` writes it (``"name": "recipe"`` lines of
    printable ASCII without quotes or backslashes, ``#`` comment lines, blank lines),
    read without a YAML parser: 5,000 names take milliseconds instead of a tenth of a
    second. Anything else -- other YAML, escapes, a repeated name -- returns None and
    goes through ruamel.yaml, which decides (and names the error)."""
    owners: dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        match = _PLAIN_LINE.fullmatch(line)
        if match is None or match[1] in owners:
            return None
        owners[match[1]] = match[2]
    return owners


def _tokens_path(channel: Path) -> Path:
    return internal_dir(channel) / TOKENS_FILE


def _tokens(channel: Path) -> dict[str, str]:
    path = _tokens_path(channel)
    if not path.exists():
        if (internal_dir(channel) / LAST_OWNERS).exists():  # claims were made with tokens
            raise ChannelError(f"{path}: missing, but this channel's owners have tokens",
                               hint="restore it from a backup; a deleted token file must not "
                               "let anyone claim a recipe")
        return {}
    try:
        data = json.loads(_read_text(path))
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ChannelError(f"{path}: not a JSON map of recipe name to token hash",
                           hint="restore it from a backup; tokens cannot be recovered from it")
    return data


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _verify(channel: Path, recipe: str, token: str | None, tokens: dict[str, str]) -> bool:
    stored = tokens.get(recipe)
    if stored is None:
        return True  # a recipe registered before tokens existed: it gets one on next publish
    return token is not None and hmac.compare_digest(stored, _digest(token))


def _refuse(channel: Path, reasons: list[str]) -> OwnershipRefused:
    return OwnershipRefused(
        f"{channel / OWNERS_FILE}: " + "; ".join(reasons),
        hint=f"publish or remove as the owning recipe: --recipe NAME --token TOKEN (or "
        f"{TOKEN_ENV}); to transfer a name, edit owners.yaml")


def check_owners(channel: Path, names: list[str], recipe: str | None,
                 token: str | None = None) -> list[Claim]:
    """Refuse names owned by another recipe, or a recipe whose token does not match;
    return the new claims to register."""
    owners = load_owners(channel)
    tokens = _tokens(channel)
    refused, new = [], []
    for name in sorted(set(names)):
        owner = owners.get(name)
        if owner is None:
            claimant = recipe or name
            if not _verify(channel, claimant, token, tokens):
                refused.append(f"recipe '{claimant}' has a token and none or a wrong one "
                               f"was given for the new name {name}")
            else:
                new.append(Claim(name, claimant))
        elif recipe is None or owner != recipe:
            refused.append(f"{name} belongs to recipe '{owner}'"
                           + (f", not '{recipe}'" if recipe else ""))
        elif not _verify(channel, owner, token, tokens):
            refused.append(f"{name} belongs to recipe '{owner}' and the token given for it is "
                           + ("missing" if token is None else "wrong"))
    if refused:
        raise _refuse(channel, refused)
    return new


def require_owner(channel: Path, names: list[str], recipe: str | None,
                  token: str | None) -> None:
    """Removal: every name that has an owner may be removed only by that recipe's token."""
    owners = load_owners(channel)
    tokens = _tokens(channel)
    refused = []
    for name in sorted(set(names)):
        owner = owners.get(name)
        if owner is None:
            continue
        if recipe != owner:
            refused.append(f"{name} belongs to recipe '{owner}'"
                           + (f", not '{recipe}'" if recipe else "; give --recipe"))
        elif owner not in tokens or not _verify(channel, owner, token, tokens):
            refused.append(f"removing {name} needs recipe '{owner}''s token")
    if refused:
        raise _refuse(channel, refused)


def register(channel: Path, claims: list[Claim], recipe_seen: set[str] = frozenset()
             ) -> dict[str, str]:
    """Write the new claims; mint a token for every recipe that has none yet (among the
    claimants and ``recipe_seen``). Returns ``{recipe: token}`` for the new tokens (the
    only time a token is shown)."""
    owners = load_owners(channel)
    tokens = _tokens(channel)
    minted: dict[str, str] = {}
    for recipe in sorted({c.recipe for c in claims} | set(recipe_seen)):
        if recipe not in tokens:
            minted[recipe] = secrets.token_urlsafe(32)
            tokens[recipe] = _digest(minted[recipe])
    files: list[tuple[Path, str]] = []
    if minted:
        internal_dir(channel).mkdir(parents=True, exist_ok=True)
        files.append((_tokens_path(channel), json.dumps(tokens, indent=2, sort_keys=True)))
    if claims:
        owners.update({c.package: c.recipe for c in claims})
        quote = encode_basestring_ascii  # what json.dumps does to a str, without its setup
        body = "# package name: the recipe (feedstock) allowed to publish it\n" + "".join(
            f"{quote(name)}: {quote(owners[name])}\n" for name in sorted(owners)
        )
        files += [(channel / OWNERS_FILE, body), (internal_dir(channel) / LAST_OWNERS, body)]
    # tokens, then owners, then the last good copy; all durable before the first replace
    write_atomic_many(files, modes={_tokens_path(channel): 0o600})
    return minted
