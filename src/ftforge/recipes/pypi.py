"""Recipes from PyPI sdists, aware of the free-threaded ABI (pure: facts in, text out).

Compiled packages get one build per ``python`` variant in conda_build_config.yaml
with a build string that carries the ABI marker (``py313th<hash>_0``, which
conda-forge's extension packages lack), and a recipe test that imports every
extension module, fails if any of them turned the GIL back on, and fails if the
build declared extension modules but shipped none (unless the recipe records
why that is meant, as for Cython). Pure-Python packages become ``noarch: python``.
A dependency whose conda name ftforge does not know gets its normalised PyPI
name, marked as assumed in the recipe (``strict_names`` refuses instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from ..errors import FtforgeError
from ..pypi import normalize
from ..variants import DEFAULT_SERIES, FREETHREADED_MARKER, PythonVariant
from . import clibs, gil_check, installer
from .conda_names import conda_name, conda_name_or_assumed
from .sdist import BACKENDS, SdistFacts

__all__ = [
    "PypiRecipe",
    "UnmappedDependencies",
    "UnsupportedBuild",
    "assumed_names",
    "conda_requirements",
    "conda_spec",
    "generate",
    "generate_meta",
    "generate_meta_yaml",
]


class UnmappedDependencies(FtforgeError):
    """Requires-Dist names with no known conda name (strict mode only)."""


# Packages whose build declares extension modules but that build pure Python on
# free-threaded CPython on purpose (normalised PyPI name -> why).
PURE_BUILD_OK: dict[str, str] = {
    "cython": "Cython's setup.py compiles Cython only for GIL interpreters, by design",
}


class UnsupportedBuild(FtforgeError):
    """An sdist ftforge cannot build here (e.g. a Rust toolchain is required)."""


@dataclass(frozen=True)
class PypiRecipe:
    facts: SdistFacts
    source_url: str
    sha256: str
    build_number: int = 0
    gil_reenabled_ok: str | None = None
    extra_names: Mapping[str, str] = field(default_factory=dict)
    apt_build_dependencies: tuple[str, ...] = ()
    """Debian packages the `system` profile links (e.g. libyaml-dev); checked before a build."""
    c_libraries: tuple[str, ...] = ()
    """Conda packages of the C libraries the build links (host requirements; ftforge.recipes.clibs)."""
    strict_names: bool = False
    """Refuse dependencies with no known conda name instead of assuming the PyPI name."""
    pure_build_ok: str | None = None
    """Why a build that declares extension modules may ship none (default: PURE_BUILD_OK)."""

    @property
    def package_name(self) -> str:
        return conda_name(self.facts.name, self.extra_names) or normalize(self.facts.name)

    @property
    def pure_build_reason(self) -> str | None:
        return self.pure_build_ok or PURE_BUILD_OK.get(normalize(self.facts.name))


def conda_spec(specifier: SpecifierSet) -> str:
    """PEP 440 specifiers in conda's match-spec syntax (``~=`` expanded)."""
    order = {">=": 0, ">": 1, "==": 2, "===": 2, "~=": 3, "!=": 4, "<=": 5, "<": 6}
    parts = []
    for spec in sorted(specifier, key=lambda s: (order.get(s.operator, 9), s.version)):
        if spec.operator == "~=":
            release = spec.version.split(".")
            upper = release[:-1]
            upper[-1] = str(int(upper[-1]) + 1)
            parts += [f">={spec.version}", f"<{'.'.join(upper)}"]
        elif spec.operator == "===":
            parts.append(f"=={spec.version}")
        else:
            parts.append(f"{spec.operator}{spec.version}")
    return ",".join(parts)


def _environment(series: str) -> dict[str, str]:
    return {"python_version": series, "python_full_version": f"{series}.0",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "platform_machine": "x86_64", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def _applies(req: Requirement, series: str) -> bool:
    return req.marker is None or req.marker.evaluate(_environment(series))


def _conda_dependency(req: Requirement, names: Mapping[str, str]) -> tuple[str, bool]:
    """``("name spec", assumed)`` for a requirement."""
    name, assumed = conda_name_or_assumed(req.name, names)
    return f"{name} {conda_spec(req.specifier)}".strip(), assumed


def _refuse_unknown(package: str, unknown: list[str], what: str = "") -> None:
    if unknown:
        raise UnmappedDependencies(
            f"{package}: no known conda name for {what}{', '.join(sorted(set(unknown)))} "
            "(--strict-names)",
            hint="pass --map PYPI=CONDA for each, or drop --strict-names to use the PyPI "
            "name, marked as assumed in the recipe",
        )


def _requirements(requirements: tuple[str, ...], names: Mapping[str, str], package: str,
                  series: str) -> list[tuple[str, bool]]:
    out = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise FtforgeError(f"{package}: Requires-Dist '{text}' is not valid ({exc})") from None
        if _applies(req, series):
            out.append(_conda_dependency(req, names))
    return out


def conda_requirements(requirements: tuple[str, ...], *, names: Mapping[str, str],
                       package: str, series: str = DEFAULT_SERIES,
                       strict: bool = False) -> list[str]:
    """Requires-Dist -> conda run requirements; markers evaluated for ``series`` on linux.

    An unknown name becomes the normalised PyPI name (see ``assumed_names``);
    ``strict`` refuses it instead."""
    found = _requirements(requirements, names, package, series)
    if strict:
        _refuse_unknown(package, [dep.split()[0] for dep, assumed in found if assumed])
    return sorted({dep for dep, _ in found})


def _run(recipe: PypiRecipe) -> list[str]:
    return conda_requirements(recipe.facts.requires_dist, names=recipe.extra_names,
                              package=recipe.facts.name, strict=recipe.strict_names)


def _build_requirements(recipe: PypiRecipe) -> list[tuple[str, bool]]:
    facts = recipe.facts
    out = []
    for text in facts.build_requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if _applies(req, DEFAULT_SERIES):
            out.append(_conda_dependency(req, recipe.extra_names))
    return out


def assumed_names(recipe: PypiRecipe) -> list[str]:
    """Conda names in the recipe that are the PyPI name by assumption, not checked."""
    found = _requirements(recipe.facts.requires_dist, recipe.extra_names, recipe.facts.name,
                          DEFAULT_SERIES)
    if not recipe.facts.self_hosted_backend:
        found += _build_requirements(recipe)
    return sorted({dep.split()[0] for dep, assumed in found if assumed})


def _host(recipe: PypiRecipe) -> list[str]:
    facts = recipe.facts
    host = ["python", *installer.host_requirements(recipe.package_name), *recipe.c_libraries]
    if facts.self_hosted_backend:
        # The backend builds itself from its source tree: its own runtime
        # requirements must be importable at build time.
        return host + _run(recipe)
    found = _build_requirements(recipe)
    if recipe.strict_names:
        _refuse_unknown(facts.name, [d.split()[0] for d, assumed in found if assumed],
                        "build requirement ")
    host += [dependency for dependency, _ in found]
    backend_pkg = next(pkg for b, pkg in BACKENDS.values() if b == facts.backend)
    if not any(h.split()[0] == backend_pkg for h in host):
        host.append(backend_pkg)
    return host


def _yaml_list(items: list[str], indent: int, assumed: frozenset[str] = frozenset()) -> str:
    pad = " " * indent
    note = "  # assumed conda name (the PyPI name)"
    return "\n".join(f'{pad}- {item}{note if item.split()[0] in assumed else ""}'
                     for item in items) if items else f"{pad}[]"


# Trove classifiers -> SPDX, for sdists whose License field is free text.
_CLASSIFIER_SPDX = {
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
}


def spdx_license(facts: SdistFacts) -> str:
    """An SPDX expression: the License field if it is one, else the classifiers."""
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    if facts.license:
        try:
            return canonicalize_license_expression(facts.license)
        except InvalidLicenseExpression:
            pass
    found = sorted({_CLASSIFIER_SPDX[c] for c in facts.classifiers if c in _CLASSIFIER_SPDX})
    if found:
        return " OR ".join(found)
    words = facts.license.split()
    for spdx in _CLASSIFIER_SPDX.values():  # "Apache 2.0" -> Apache-2.0
        if words and spdx.lower() == "-".join(words[:2]).lower():
            return spdx
    return "LicenseRef-Unknown"


def _about(facts: SdistFacts) -> str:
    lines = [f"  summary: {_quote(facts.summary or facts.name)}"]
    if facts.homepage:
        lines.append(f"  homepage: {facts.homepage}")
    lines.append(f"  license: {_quote(spdx_license(facts))}")
    if facts.license_files:
        lines.append("  license_file:\n" + _yaml_list(list(facts.license_files), 4))
    return "about:\n" + "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header(recipe: PypiRecipe) -> str:
    f = recipe.facts
    wrapper = (f" (through the sdist's own wrapper module `{f.backend_wrapper}`)"
               if f.backend_wrapper else "")
    notes = [f"# Generated by `ftforge recipe pypi {f.name}=={f.version}`; regenerate, do not edit.",
             f"# Build backend: {f.backend}{wrapper}. Requires-Dist markers evaluated for Python "
             f"{DEFAULT_SERIES} on linux."]
    if f.compiled:
        notes.append(f"# Compiled: {'; '.join(f.compiled_evidence)}.")
        if f.extension_modules:
            notes.append(f"# Declared extension modules: {', '.join(f.extension_modules)}.")
        notes.append("# Compilers: C and C++ (C++ sources or build files)." if f.cxx
                     else "# Compilers: C only (no C++ source or build setting).")
        if recipe.pure_build_reason:
            notes.append(f"# May ship no extension module: {recipe.pure_build_reason}.")
    assumed = assumed_names(recipe)
    if assumed:
        notes.append(f"# Assumed conda names (not in ftforge's table; conda-forge usually keeps "
                     f"the PyPI name): {', '.join(assumed)}. Check them, or pass --map.")
    if f.limited_api:
        notes.append("# Builds the stable ABI: the GIL build keeps abi3; the free-threaded build "
                     "must be version-specific (no .abi3.so for 3.13t/3.14t).")
    notes += [f"# Note: {note}." for note in f.notes]
    return "\n".join(notes) + "\n"


def generate(recipe: PypiRecipe) -> dict[str, str]:
    facts = recipe.facts
    if facts.backend == "maturin":
        raise UnsupportedBuild(
            f"{facts.name} {facts.version} builds with maturin and needs a Rust toolchain as a "
            "conda package (rust, maturin), which ftforge does not provide yet",
            hint="choose a package without Rust extensions, or package the Rust toolchain first",
        )
    run = _run(recipe)
    assumed = frozenset(assumed_names(recipe))
    imports = list(facts.top_level)
    common = f"""{_header(recipe)}schema_version: 1

context:
  name: {recipe.package_name}
  version: "{facts.version}"
  build_number: {recipe.build_number}
"""
    source = f"""
package:
  name: ${{{{ name }}}}
  version: ${{{{ version }}}}

source:
  url: {recipe.source_url}
  sha256: {recipe.sha256}
"""
    script = installer.install_script(recipe.package_name)
    if recipe.c_libraries:  # the C libraries' headers and libraries from the host environment
        script = f'CPPFLAGS="-I$PREFIX/include" LDFLAGS="-L$PREFIX/lib" {script}'
    if recipe.apt_build_dependencies:  # system profile: record what it links (the marker)
        script = f"{script} && bash $RECIPE_DIR/{clibs.SYSTEM_LINKAGE_SCRIPT_NAME}"
    if not facts.compiled:
        text = common + source + f"""
build:
  number: ${{{{ build_number }}}}
  noarch: python
  script: {script}

requirements:
  host:
{_yaml_list(_host(recipe), 4, assumed)}
  run:
{_yaml_list(["python >=${{ python_min }}", *run], 4, assumed)}

{_tests(recipe, imports)}
{_about(facts)}"""
        return {"recipe.yaml": text}

    ft_tests = _ft_tests(recipe, imports)
    text = common + f"""  abi_marker: ${{{{ "{FREETHREADED_MARKER}" if is_freethreading == "true" else "" }}}}
""" + source + f"""
build:
  number: ${{{{ build_number }}}}
  # py313t... for the free-threaded ABI, py313... for the GIL one.
  string: py${{{{ python | version_to_buildstring }}}}${{{{ abi_marker }}}}h${{{{ hash }}}}_${{{{ build_number }}}}
  script: {script}

requirements:
  build:
{_yaml_list(_compilers(facts, "${{{{ compiler('{}') }}}}"), 4)}
  host:
{_yaml_list(_host(recipe), 4, assumed)}
  run:
{_yaml_list(["python", *run], 4, assumed)}

{_tests(recipe, imports)}{ft_tests}
{_about(facts)}"""
    marker = ({clibs.SYSTEM_LINKAGE_SCRIPT_NAME: clibs.system_linkage_script(recipe.package_name)}
              if recipe.apt_build_dependencies else {})
    return {"recipe.yaml": text + _extra(recipe), **_gil_check_files(facts), **marker}


def _compilers(facts: SdistFacts, template: str) -> list[str]:
    return [template.format(lang) for lang in (("c", "cxx") if facts.cxx else ("c",))]


def _gil_check_args(recipe: PypiRecipe, imports: list[str]) -> str:
    args = []
    if recipe.gil_reenabled_ok:
        args.append("--allow-gil")
    if not recipe.pure_build_reason:
        args.append("--require-extensions")
    if recipe.facts.extension_modules:
        args.append(f"--declared {','.join(recipe.facts.extension_modules)}")
    return " ".join([*args, *imports])


def _gil_check_files(facts: SdistFacts) -> dict[str, str]:
    """The free-threaded recipe test script, shipped beside compiled recipes."""
    return {gil_check.FILE_NAME: gil_check.SCRIPT} if facts.compiled else {}


def generate_meta(recipe: PypiRecipe) -> dict[str, str]:
    """``{file name: text}`` for the meta.yaml form of the recipe."""
    return {"meta.yaml": generate_meta_yaml(recipe), **_gil_check_files(recipe.facts)}


def _extra(recipe: PypiRecipe) -> str:
    lines = []
    if recipe.gil_reenabled_ok:
        lines.append(f"    gil_reenabled_ok: {_quote(recipe.gil_reenabled_ok)}")
    if recipe.facts.compiled and recipe.pure_build_reason:
        lines.append(f"    pure_build_ok: {_quote(recipe.pure_build_reason)}")
    if recipe.apt_build_dependencies:
        lines.append("    # Debian packages this build links (system profile): not self-contained.")
        lines.append("    apt_build_dependencies:\n" +
                     _yaml_list(sorted(recipe.apt_build_dependencies), 6))
    return "\nextra:\n  ftforge:\n" + "\n".join(lines) + "\n" if lines else ""


def _tests(recipe: PypiRecipe, imports: list[str]) -> str:
    commands, requires = installer.pip_check_test(recipe.package_name)
    needs = ("    requirements:\n      run:\n" + _yaml_list(requires, 8) + "\n") if requires else ""
    return f"""tests:
  - python:
      imports:
{_yaml_list(imports, 8)}
      # pip is a package of its own (recipes.installer): pip check runs as a script.
      pip_check: false
  - script:
{_yaml_list(commands, 6)}
{needs}"""


def _ft_tests(recipe: PypiRecipe, imports: list[str]) -> str:
    ft = PythonVariant.ft(DEFAULT_SERIES)
    return f"""  # Free-threaded build only: import every extension module; the GIL must stay
  # off, and no stable-ABI module may ship ({ft.abi_tag} has no stable ABI).
  - if: is_freethreading == "true"
    then:
      - files:
          recipe:
            - {gil_check.FILE_NAME}
        script:
          - python {gil_check.FILE_NAME} {_gil_check_args(recipe, imports)}
"""


def generate_meta_yaml(recipe: PypiRecipe) -> str:
    """The same recipe for conda-build users: selectors and ``is_freethreading``."""
    facts = recipe.facts
    run = _run(recipe)
    host = _host(recipe)
    assumed = frozenset(assumed_names(recipe))
    imports = list(facts.top_level)
    head = _header(recipe) + (
        f'{{% set name = "{recipe.package_name}" %}}\n'
        f'{{% set version = "{facts.version}" %}}\n\n'
        "package:\n  name: {{ name }}\n  version: {{ version }}\n\n"
        f"source:\n  url: {recipe.source_url}\n  sha256: {recipe.sha256}\n\n"
    )
    script = installer.install_script(recipe.package_name, python="{{ PYTHON }}")
    if not facts.compiled:
        body = (f"build:\n  number: {recipe.build_number}\n  noarch: python\n  script: {script}\n\n"
                "requirements:\n  host:\n" + _yaml_list(
                    ["python {{ python_min }}", *host[1:]], 4, assumed) +
                "\n  run:\n" + _yaml_list(["python >={{ python_min }}", *run], 4, assumed) +
                "\n\n")
    else:
        body = (
            f"build:\n  number: {recipe.build_number}\n"
            f"  string: py{{{{ CONDA_PY }}}}{FREETHREADED_MARKER}h{{{{ PKG_HASH }}}}_{{{{ PKG_BUILDNUM }}}}"
            "  # [is_freethreading]\n"
            "  string: py{{ CONDA_PY }}h{{ PKG_HASH }}_{{ PKG_BUILDNUM }}  # [not is_freethreading]\n"
            f"  script: {script}\n\n"
            "requirements:\n  build:\n" +
            _yaml_list([*_compilers(facts, "{{{{ compiler('{}') }}}}"), "{{ stdlib('c') }}"], 4) +
            "\n  host:\n" + _yaml_list(host, 4, assumed) +
            "\n  run:\n" + _yaml_list(["python", *run], 4, assumed) + "\n\n")
    commands, requires = installer.pip_check_test(recipe.package_name)
    files = ""
    if facts.compiled:
        commands.append(f"python {gil_check.FILE_NAME} {_gil_check_args(recipe, imports)}"
                        "  # [is_freethreading]")
        files = f"  files:\n    - {gil_check.FILE_NAME}\n"
    needs = ("  requires:\n" + _yaml_list(requires, 4) + "\n") if requires else ""
    test = ("test:\n  imports:\n" + _yaml_list(imports, 4) + "\n" + files + needs +
            "  commands:\n" + _yaml_list(commands, 4) + "\n")
    return head + body + test + "\n" + _about(facts)
