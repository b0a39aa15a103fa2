"""Every size and time limit ftforge applies to input it did not make, in one place.

Each limit is a named field with its default and what crossing it means; the
README's "Limits" section is made from these docstrings. Modules take a limits
object as a keyword argument (tests pass smaller ones) instead of reading
constants of their own.

Sections:

- :class:`ArchiveLimits` -- conda packages read by the channel audit.
- :class:`SourceLimits` -- sdists, index documents and downloads (PyPI reader).
- :class:`RecipeLimits` -- feedstock recipes rendered by the migration bot.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ArchiveLimits", "RecipeLimits", "SourceLimits"]


@dataclass(frozen=True)
class ArchiveLimits:
    """Conda packages (``.conda`` / ``.tar.bz2``) read by ``channel audit`` and ``publish``."""

    # Fields are added by the channel audit (owner: channel/audit.py).


@dataclass(frozen=True)
class SourceLimits:
    """sdists, PyPI index documents and downloads."""

    # Fields are added by the PyPI reader (owner: pypi.py, recipes/sdist.py).


@dataclass(frozen=True)
class RecipeLimits:
    """Feedstock recipes (``meta.yaml`` / ``recipe.yaml``) read by the migration bot."""

    # Fields are added by the recipe reader (owner: migrate/recipe_reader.py).
