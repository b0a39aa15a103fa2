"""The local compiler activation packages and the GCC runtime they export.

``${{ compiler('c') }}`` renders to ``<c_compiler>_<target_platform>``.
conda-forge's ``gcc_linux-64`` is not reachable here, so ftforge builds
``ftforge-system-gcc_linux-64`` / ``ftforge-system-gxx_linux-64``, whose
activation scripts export the build machine's /usr/bin compilers, and sets
``c_compiler`` / ``cxx_compiler`` to them in the variant config it builds with.
Recipes keep conda-forge's ``compiler('c')`` untouched.

What compiled packages need at run time comes through the compilers'
``run_exports`` (strong, as conda-forge's compilers and sysroot do):

* ``__glibc >=X`` from both compilers, X = **the build machine's glibc**
  (its binaries may use any symbol version up to it). The linkage audit
  (:mod:`ftforge.channel.linkage`) checks that X covers the ``GLIBC_x.y``
  versions a package's ELF files actually need.
* ``libstdcxx`` and ``libgcc`` from the C++ compiler: conda packages made from
  the build machine's GCC runtime (``libstdc++.so.6``, ``libgcc_s.so.1``),
  named for what they are, so C++ code runs where no system libstdc++ is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["RUNTIME_PACKAGES", "Toolchain", "build_machine_glibc", "generate"]

# Bump when the generated toolchain recipe changes meaning (it keys every build cache).
TOOLCHAIN_SCHEMA = "2"

RUNTIME_PACKAGES: tuple[str, ...] = ("libgcc", "libstdcxx")
"""Run-time packages built with the toolchain; published with what depends on them."""


def build_machine_glibc() -> str:
    """``"2.36"``: the glibc this machine's compilers link against."""
    text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    name, _, version = text.partition(" ")
    if name != "glibc" or not version:
        raise RuntimeError(f"not a glibc system ({text!r}): ftforge builds for linux-64 glibc")
    return version


@dataclass(frozen=True)
class Toolchain:
    gcc_version: str
    glibc_version: str = "2.17"
    platform: str = "linux-64"
    c_compiler: str = "ftforge-system-gcc"
    cxx_compiler: str = "ftforge-system-gxx"

    def variant_config(self) -> dict[str, list[str]]:
        return {"c_compiler": [self.c_compiler], "cxx_compiler": [self.cxx_compiler]}

    @property
    def identity(self) -> str:
        return (f"{self.c_compiler}-{self.cxx_compiler}-{self.gcc_version}-{self.platform}"
                f"-glibc{self.glibc_version}-schema{TOOLCHAIN_SCHEMA}")

    @property
    def gcc_major(self) -> str:
        return self.gcc_version.split(".")[0]

    @property
    def glibc_spec(self) -> str:
        return f"__glibc >={self.glibc_version}"

    def runtime_spec(self, name: str) -> str:
        return f"{name} >={self.gcc_version}"


def _activation(name: str, script: str, exports: dict[str, str], version: str,
                run_exports: list[str]) -> str:
    lines = "\n".join(f"          export {k}={v}" for k, v in exports.items())
    strong = "\n".join(f"          - {spec}" for spec in run_exports)
    return f"""  - package:
      name: {name}
      version: "{version}"
    build:
      script:
        - mkdir -p "$PREFIX/etc/conda/activate.d"
        - |
          cat > "$PREFIX/etc/conda/activate.d/{script}" <<'EOS'
{lines}
          EOS
    requirements:
      run_exports:
        strong:
{strong}
    about:
      summary: Activates the build machine's system compiler (not a conda-forge toolchain)
      license: BSD-3-Clause
"""


def _runtime(name: str, files: list[tuple[str, str, str]], version: str, summary: str,
             run: list[str]) -> str:
    """A package holding shared libraries copied from the build machine's GCC.

    ``files``: (compiler, file name gcc resolves, name in $PREFIX/lib, soname link)."""
    lines = []
    for compiler, lookup, soname in files:
        lines.append(f'        - real="$(readlink -f "$({compiler} -print-file-name={lookup})")"')
        lines.append('        - test -f "$real"')
        lines.append('        - cp "$real" "$PREFIX/lib/"')
        lines.append(f'        - if [ "$(basename "$real")" != {soname} ]; then '
                     f'ln -s "$(basename "$real")" "$PREFIX/lib/{soname}"; fi')
    deps = "\n".join(f"        - {spec}" for spec in run) or ""
    requirements = f"""    requirements:
      run:
{deps}
""" if run else ""
    return f"""  - package:
      name: {name}
      version: "{version}"
    build:
      dynamic_linking:
        binary_relocation: false
      script:
        - mkdir -p "$PREFIX/lib"
{chr(10).join(lines)}
{requirements}    about:
      summary: {summary}
      license: GPL-3.0-only WITH GCC-exception-3.1
"""


def generate(toolchain: Toolchain) -> dict[str, str]:
    sub = toolchain.platform
    version = toolchain.gcc_version
    libgcc = toolchain.runtime_spec("libgcc")
    c = _activation(f"{toolchain.c_compiler}_{sub}", "ftforge-system-gcc.sh",
                    {"CC": "/usr/bin/gcc", "CPP": "/usr/bin/cpp", "AR": "/usr/bin/ar",
                     "LD": "/usr/bin/ld", "RANLIB": "/usr/bin/ranlib"}, version,
                    [toolchain.glibc_spec])
    cxx = _activation(f"{toolchain.cxx_compiler}_{sub}", "ftforge-system-gxx.sh",
                      {"CXX": "/usr/bin/g++"}, version,
                      [toolchain.glibc_spec, toolchain.runtime_spec("libstdcxx"), libgcc])
    gcc_rt = _runtime(
        "libgcc", [("gcc", "libgcc_s.so.1", "libgcc_s.so.1")], version,
        f"GCC {version}'s low-level runtime (libgcc_s.so.1), copied from the build machine's GCC",
        [toolchain.glibc_spec])
    cxx_rt = _runtime(
        "libstdcxx", [("g++", "libstdc++.so.6", "libstdc++.so.6")], version,
        f"GCC {version}'s C++ standard library (libstdc++.so.6), copied from the build "
        "machine's GCC", [toolchain.glibc_spec, libgcc])
    recipe = f"""# Generated by ftforge: the system toolchain activation packages and its runtime.
schema_version: 1
recipe:
  name: ftforge-system-toolchain
  version: "{version}"
build:
  number: 0
outputs:
{c}{cxx}{gcc_rt}{cxx_rt}"""
    return {"recipe.yaml": recipe}
