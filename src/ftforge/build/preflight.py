"""Check, before a long build, that the Debian packages a recipe names are installed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable

from ..errors import MissingSystemDependency

__all__ = ["check_apt_dependencies", "dpkg_installed"]

SETUP_SCRIPT = "scripts/setup"


def dpkg_installed(package: str) -> bool:
    """Whether Debian's package database says ``package`` is installed."""
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True, text=True, check=False,
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def check_apt_dependencies(
    packages: Iterable[str],
    *,
    recipe: str,
    installed: Callable[[str], bool] = dpkg_installed,
) -> None:
    missing = sorted(p for p in packages if not installed(p))
    if missing:
        raise MissingSystemDependency(
            f"{recipe}: the build needs Debian package(s) that are not installed: "
            f"{', '.join(missing)}",
            hint=f"sudo apt-get install -y {' '.join(missing)}   (or run {SETUP_SCRIPT})",
        )
