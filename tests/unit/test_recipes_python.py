"""The interpreter recipe: committed files match the generator; rattler-build renders it."""

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ftforge.build.driver import render
from ftforge.build.variant_config import VariantMatrix
from ftforge.errors import RecipeDriftError, UnknownPythonVersion
from ftforge.recipes import build_config
from ftforge.recipes import files as recipe_files
from ftforge.recipes import python as python_recipe
from ftforge.recipes.cpython_sources import KNOWN_SOURCES, source_for
from ftforge.variants import PythonVariant

VERSIONS = sorted(KNOWN_SOURCES)


@pytest.mark.parametrize("version", VERSIONS)
def test_committed_recipes_are_what_the_generator_writes(repo, version):
    result = subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "recipe", "python", version, "--check",
         "--output-dir", str(repo / "recipes")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_committed_conda_build_config_is_generated(repo):
    recipe_files.check_files(repo, build_config.generate(), command="ftforge recipe config")


def test_check_detects_drift(tmp_path):
    name, files = python_recipe.files_for("3.13.5")
    recipe_files.write_files(tmp_path / name, files)
    (tmp_path / name / "recipe.yaml").write_text(files["recipe.yaml"].replace("--disable-gil", "x"))
    with pytest.raises(RecipeDriftError, match="recipe.yaml"):
        recipe_files.check_files(tmp_path / name, files, command="ftforge recipe python 3.13.5")
    result = subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "recipe", "python", "3.13.5", "--check",
         "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "differ from what the generator writes" in result.stderr
    assert "Traceback" not in result.stderr


def test_source_is_python_org_with_the_known_sha256():
    src = source_for("3.13.5")
    assert src.url == "https://www.python.org/ftp/python/3.13.5/Python-3.13.5.tar.xz"
    assert src.sha256 == "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
    _, files = python_recipe.files_for("3.13.5")
    assert src.url in files["recipe.yaml"] and src.sha256 in files["recipe.yaml"]


def test_unknown_release_needs_a_sha256():
    with pytest.raises(UnknownPythonVersion, match="--sha256"):
        source_for("3.13.77")
    assert source_for("3.13.77", sha256="AB" * 32).sha256 == "ab" * 32


def _render(recipe_dir, **values):
    matrix = VariantMatrix({k: [v] for k, v in values.items()})
    out = {}
    for variant in render(recipe_dir / "recipe.yaml", matrix):
        recipe = variant.recipe
        out[recipe.package.name] = variant
    return out


def py_down(outputs):
    return outputs["python"].recipe.to_dict()["build"]["variant"].get("down_prioritize_variant", 0)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("freethreading", ["no", "yes"])
@pytest.mark.parametrize("profile", ["system", "conda-forge"])
def test_recipe_renders_for_every_variant_and_profile(tmp_path, version, freethreading, profile):
    name, files = python_recipe.files_for(version)
    recipe_files.write_files(tmp_path, files)
    v = PythonVariant(source_for(version).series, freethreading == "yes")
    outputs = _render(tmp_path, freethreading=freethreading, python_deps_profile=profile,
                      python_optimization=python_recipe.DEFAULT_OPTIMIZATION,
                      c_compiler="gcc", cxx_compiler="gxx")
    assert set(outputs) == {"python", "python_abi", v.metapackage}

    abi = outputs["python_abi"].recipe.to_dict()
    assert abi["package"]["version"] == v.series
    assert abi["build"]["string"] == v.python_abi_build_string(0)
    assert abi["build"]["noarch"] == "generic"
    assert abi["build"]["variant"].get("down_prioritize_variant", 0) == v.down_prioritize
    assert py_down(outputs) == v.down_prioritize
    assert abi["requirements"]["run_constraints"] == [v.python_abi_run_constraint]

    py = outputs["python"].recipe.to_dict()
    # conda-forge's practice: the GIL interpreter's build number is raised by 100.
    expected_number = 0 if v.freethreaded else 100
    assert py["build"]["number"] == expected_number
    assert py["build"]["string"].endswith(f"_{expected_number}_{v.abi_tag}")
    assert py["build"]["string"].startswith("h")
    assert py["build"]["python"]["site_packages_path"] == v.site_packages
    assert py["build"]["script"]["env"].get("CONFIGURE_EXTRA", "") == " ".join(v.configure_flags)
    assert py["requirements"]["run"] == [v.python_abi_spec]
    assert py["requirements"]["run_exports"] == {"noarch": ["python"], "weak": [v.python_abi_spec]}
    host = py["requirements"].get("host", [])
    if profile == "conda-forge":
        assert {"openssl", "libffi", "zlib", "sqlite", "ncurses", "readline",
                "libuuid", "libexpat", "bzip2", "liblzma-devel"} <= set(host)
        assert "tk" not in host  # _tkinter is left out: no X11 client libraries here
        assert "gcc_linux-64" in py["requirements"]["build"]
    else:
        assert host == []

    meta = outputs[v.metapackage].recipe.to_dict()
    assert v.python_abi_spec in meta["requirements"]["run"]


def test_published_default_is_pgo_lto_bolt_and_each_optimization_is_its_own_build(tmp_path):
    """The variants file publishes PGO + LTO + BOLT; each optimization level hashes into a
    different python build string (a quick-profile build never passes for the default)."""
    _, files = python_recipe.files_for("3.13.5")
    recipe_files.write_files(tmp_path, files)
    assert python_recipe.DEFAULT_OPTIMIZATION == "pgo-lto-bolt"
    declared = YAML(typ="safe").load((tmp_path / "variants.yaml").read_text())
    assert declared["python_optimization"] == ["pgo-lto-bolt"]
    recipe = YAML(typ="safe").load(files["recipe.yaml"])
    assert python_recipe.BOLT_APT_PACKAGE in recipe["extra"]["ftforge"]["apt_build_dependencies"]
    strings = {}
    for level in python_recipe.OPTIMIZATIONS:
        py = _render(tmp_path, freethreading="yes", python_deps_profile="conda-forge",
                     python_optimization=level, c_compiler="gcc",
                     cxx_compiler="gxx")["python"].recipe.to_dict()
        assert py["build"]["script"]["env"]["PY_OPTIMIZATION"] == level
        assert py["build"]["variant"]["use_keys"][-1] == "python_optimization"
        strings[level] = py["build"]["string"]
        tests = " ".join(line for t in py["tests"] for line in t["script"])
        # the recipe's own test checks what configure was given (rendered at test time)
        assert "('${{ python_optimization }}' != 'none')" in tests and "CONFIG_ARGS" in tests
        assert "b'.note.bolt_info' in open(sys.executable, 'rb').read()" in tests
        assert "'${{ python_optimization }}'.endswith('-bolt')" in tests
    assert len(set(strings.values())) == len(python_recipe.OPTIMIZATIONS), strings


def _elf(path: Path, *flags: str) -> Path:
    """A real executable built from an empty main with gcc's ``flags``."""
    subprocess.run(["gcc", "-o", str(path), "-x", "c", "-", *flags],
                   input="int main(void){return 0;}", text=True, check=True)
    return path


def _bolted(path: Path) -> Path:
    """``path`` with the section BOLT leaves in what it optimized."""
    note = path.with_suffix(".note")
    note.write_bytes(b"BOLT revision: test")
    subprocess.run(["objcopy", f"--add-section=.note.bolt_info={note}", str(path)], check=True)
    return path


def _fake_bolt(bin_dir: Path, *, cdsort: bool) -> Path:
    """A fake llvm-bolt (its --help-hidden lists cdsort or only hfsort+) and merge-fdata."""
    orders = "=hfsort+ =cdsort" if cdsort else "=hfsort =hfsort+"
    (bin_dir / "llvm-bolt").write_text(f'#!/bin/sh\necho "-reorder-functions {orders}"\n')
    (bin_dir / "merge-fdata").write_text("#!/bin/sh\n")
    for tool in ("llvm-bolt", "merge-fdata"):
        (bin_dir / tool).chmod(0o755)
    return bin_dir / "llvm-bolt"


def _setup_stdlib_line(module: str) -> str:
    """A module's rule as Modules/Setup.stdlib.in spells it (configure's @...@ marker)."""
    return f"@MODULE_{module.upper()}_TRUE@{module} {module.lstrip('_')}module.c -DFAKE"


def _run_build_script(tmp_path, *, make: str, level: str, executable: str,
                      extra_env: dict[str, str] | None = None, keep_modules: bool = False):
    """Run the generated build-python.sh in ``tmp_path/src`` with a fake configure
    (records its arguments), a Modules/Setup.stdlib.in with a rule for every one of
    BUILTIN_MODULES, and the given fake make; returns (result, src, prefix)."""
    _, files = python_recipe.files_for("3.13.5")
    src = tmp_path / "src"
    if not keep_modules:  # else the test wrote its own Modules/
        (src / "Modules").mkdir(parents=True)
        (src / "Modules" / "Setup.stdlib.in").write_text(
            "# fake\n@MODULE_OTHER_TRUE@other othermodule.c\n"
            + "".join(_setup_stdlib_line(m) + "\n" for m in python_recipe.BUILTIN_MODULES))
    (src / "configure").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > configure.args\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "make").write_text(make)
    for tool in (src / "configure", bin_dir / "make"):
        tool.chmod(0o755)
    (tmp_path / "build.sh").write_text(files["build-python.sh"])
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PREFIX": str(prefix), "DEPS_PROFILE": "conda-forge",
           "NOT_BUILT_MODULES": "", "PY_OPTIMIZATION": level, "PY_SERIES": "3.13",
           "PY_SITE_PACKAGES": "lib/python3.13/site-packages", "PY_EXECUTABLE": executable,
           "PY_NOARCH_SITE_PACKAGES": "lib/python3.13/site-packages",
           "QUICK_PROFILE_TESTS": " ".join(python_recipe.QUICK_PROFILE_TESTS),
           "BUILTIN_MODULES": " ".join(python_recipe.BUILTIN_MODULES),
           **(extra_env or {})}
    result = subprocess.run(["bash", str(tmp_path / "build.sh")], cwd=src, env=env,
                            capture_output=True, text=True)
    return result, src, prefix


@pytest.mark.parametrize("level", ["pgo-lto-bolt", "pgo-lto", "pgo-lto-quick", "none",
                                   "bogus"])
def test_build_script_passes_the_optimization_flags_to_configure(tmp_path, level):
    """Run the script's option logic with a fake configure/make that record their
    arguments: pgo levels add --enable-optimizations --with-lto (quick: a short
    PROFILE_TASK from QUICK_PROFILE_TESTS; bolt: --enable-bolt and the llvm-bolt found),
    none adds neither, an unknown level fails."""
    # make records its arguments; `make install` writes a position-dependent
    # executable that links no libpython (BOLT-ed for the bolt level)
    exe = _elf(tmp_path / "exe", "-no-pie")
    bolt_dir = tmp_path / "llvm" / "bin"
    bolt_dir.mkdir(parents=True)
    bolt = _fake_bolt(bolt_dir, cdsort=False)
    if level == "pgo-lto-bolt":
        _bolted(exe)
    make = ('#!/bin/sh\nprintf "%s\\n" "$@" >> make.args\n'
            f'case " $* " in *" install "*) cp {exe} "$PREFIX/bin/python3.13t"; '
            'ln "$PREFIX/bin/python3.13t" "$PREFIX/bin/python3.13"; '
            'ln -s python3.13 "$PREFIX/bin/python3" ;; esac\n')
    result, src, prefix = _run_build_script(tmp_path, make=make, level=level,
                                            executable="bin/python3.13t",
                                            extra_env={"LLVM_BOLT": str(bolt)})
    if level == "bogus":
        assert result.returncode == 1
        assert "unknown python_optimization 'bogus'" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    args = (src / "configure.args").read_text().splitlines()
    assert ("--enable-optimizations" in args and "--with-lto" in args) == (level != "none")
    assert ("--enable-bolt" in args) == (level == "pgo-lto-bolt")
    assert (f"LLVM_BOLT={bolt}" in args) == (level == "pgo-lto-bolt")
    assert (f"MERGE_FDATA={bolt_dir}/merge-fdata" in args) == (level == "pgo-lto-bolt")
    # bin/python is position-dependent: BOLT lays out the interpreter loop too
    # (CPython's defaults skip it, for position-independent code)
    assert ("BOLT_COMMON_FLAGS=-update-debug-sections" in args) == (level == "pgo-lto-bolt")
    # bin/python links the interpreter's objects, at every optimization level and in
    # every make stage (the PGO sub-makes inherit command-line variables)
    made = (src / "make.args").read_text().splitlines()
    bolted = level == "pgo-lto-bolt"
    assert made.count("LINK_PYTHON_DEPS=$(LIBRARY_OBJS)") == 2 + bolted and "install" in made
    # a bolted executable runs the training task again before it is installed
    assert ("ftforge-bolt-check" in made) == bolted
    assert ("FTFORGE_JOBS=2" in made) == bolted
    if bolted:
        assert made.index("ftforge-bolt-check") < made.index("install")
    appended = (src / "Makefile").read_text()
    assert "$(BUILDPYTHON): LINK_PYTHON_OBJS = $(LIBRARY_OBJS)" in appended
    assert "platform: $(LIBRARY_DEPS)" in appended
    assert "$(BUILDPYTHON): LINKFORSHARED += -no-pie" in appended
    assert "Programs/_freeze_module: PY_CORE_LDFLAGS = $(PY_LDFLAGS_NOLTO)" in appended
    # BOLT lays out bin/python only (it does not load libpython: no profile for it),
    # with hfsort+ where this llvm-bolt has no cdsort
    assert "BOLT_BINARIES := $(BUILDPYTHON)" in appended
    assert ("ftforge-bolt-check:\n\t$(RUNSHARED) ./$(BUILDPYTHON) $(PROFILE_TASK) "
            "-j$(FTFORGE_JOBS)\n") in appended
    assert ("BOLT_APPLY_FLAGS := $(subst =cdsort,=hfsort+,$(BOLT_APPLY_FLAGS))" in appended) \
        == (level == "pgo-lto-bolt")
    # relocations kept (--emit-relocs, for BOLT) in the executable only
    assert ("$(BUILDPYTHON): LINKFORSHARED += -Wl,--emit-relocs" in appended) \
        == (level == "pgo-lto-bolt")
    assert ("CONFIGURE_LDFLAGS_NODIST := $(filter-out -Wl$(ftforge_comma)--emit-relocs,"
            "$(CONFIGURE_LDFLAGS_NODIST))" in appended) == (level == "pgo-lto-bolt")
    # the hard link make install leaves (python3.13 -> python3.13t) is a symlink now:
    # a package would store it as a second copy of the interpreter
    assert (prefix / "bin" / "python3.13").readlink() == Path("python3.13t")
    assert (prefix / "bin" / "python3").readlink() == Path("python3.13")
    assert not (prefix / "bin" / "python3.13t").is_symlink()
    task = [a for a in args if a.startswith("PROFILE_TASK=")]
    if level == "pgo-lto-quick":
        assert task == ["PROFILE_TASK=-m test --pgo --timeout=1200 "
                        + " ".join(python_recipe.QUICK_PROFILE_TESTS)]
    else:
        assert task == []  # pgo-lto: CPython's own `-m test --pgo`


def test_the_build_fails_when_the_executable_links_libpython(tmp_path):
    """The script's own check: an installed bin/python3.13 that needs libpython fails
    the build with a one-line reason (a real ELF with a NEEDED libpython3.13.so)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / "libpython3.13.so"), "-x", "c",
                    "/dev/null"], check=True)
    linked = _elf(tmp_path / "linked", "-no-pie", "-Wl,--no-as-needed", f"-L{lib}",
                  "-lpython3.13")
    make = (f'#!/bin/sh\ncase " $* " in *" install "*) cp {linked} "$PREFIX/bin/python3.13" ;; '
            'esac\n')
    result, _, _ = _run_build_script(tmp_path, make=make, level="none",
                                     executable="bin/python3.13")
    assert result.returncode == 1
    assert "error: bin/python3.13 links libpython; it should carry the interpreter itself" \
        in result.stderr


def test_the_build_fails_when_the_executable_is_position_independent(tmp_path):
    """bin/python is linked -no-pie (as Debian's python3.X): a PIE from make install
    (the Makefile line lost, say) fails the build with a one-line reason."""
    pie = _elf(tmp_path / "pie", "-pie", "-fPIE")
    make = f'#!/bin/sh\ncase " $* " in *" install "*) cp {pie} "$PREFIX/bin/python3.13" ;; esac\n'
    result, _, _ = _run_build_script(tmp_path, make=make, level="none",
                                     executable="bin/python3.13")
    assert result.returncode == 1
    assert "error: bin/python3.13 is not a position-dependent executable (-no-pie)" \
        in result.stderr


def test_builtin_modules_go_into_setup_local_from_the_series_own_rules(tmp_path):
    """Modules/Setup.local, written before configure: *static*, then each of
    BUILTIN_MODULES with its rule from Modules/Setup.stdlib.in (sources and flags as
    the series spells them, configure's @MODULE_..._TRUE@ marker dropped); no other."""
    exe = _elf(tmp_path / "exe", "-no-pie")
    make = f'#!/bin/sh\ncase " $* " in *" install "*) cp {exe} "$PREFIX/bin/python3.13" ;; esac\n'
    result, src, _ = _run_build_script(tmp_path, make=make, level="none",
                                       executable="bin/python3.13")
    assert result.returncode == 0, result.stderr
    lines = (src / "Modules" / "Setup.local").read_text().splitlines()
    assert lines[0] == "*static*"
    assert lines[1:] == [_setup_stdlib_line(m).split("@", 2)[2]
                         for m in python_recipe.BUILTIN_MODULES]
    assert "math mathmodule.c -DFAKE" in lines and not any("other" in x for x in lines)


def test_a_builtin_module_the_series_lacks_fails_before_configure(tmp_path):
    """A module of BUILTIN_MODULES with no rule in this series' Setup.stdlib.in (removed
    or renamed upstream) fails the build at once, naming it -- not a silent .so."""
    make = "#!/bin/sh\nexit 0\n"
    result, src, _ = _run_build_script(tmp_path, make=make, level="none",
                                       executable="bin/python3.13",
                                       extra_env={"BUILTIN_MODULES": "math _gone"})
    assert result.returncode == 1
    assert ("error: _gone has no single plain rule in Modules/Setup.stdlib.in (none): take "
            "it out of BUILTIN_MODULES for this series") in result.stderr
    assert not (src / "configure.args").exists()


def test_a_builtin_module_rule_with_a_configure_placeholder_is_refused(tmp_path):
    """A rule that still holds an @...@ placeholder (configure substitutes those in
    Setup.stdlib, not in the .in file) or a continuation line is not copied."""
    make = "#!/bin/sh\nexit 0\n"
    (tmp_path / "src" / "Modules").mkdir(parents=True)
    (tmp_path / "src" / "Modules" / "Setup.stdlib.in").write_text(
        "@MODULE__CTYPES_TRUE@_ctypes _ctypes.c @MODULE__CTYPES_MALLOC_CLOSURE@\n")
    result, src, _ = _run_build_script(tmp_path, make=make, level="none",
                                       executable="bin/python3.13",
                                       extra_env={"BUILTIN_MODULES": "_ctypes"},
                                       keep_modules=True)
    assert result.returncode == 1
    assert "error: _ctypes has no single plain rule" in result.stderr
    assert "@MODULE__CTYPES_MALLOC_CLOSURE@" in result.stderr


def test_a_module_the_series_builds_in_already_is_left_to_setup_bootstrap(tmp_path):
    """3.14 moved _opcode (and _datetime) into Modules/Setup.bootstrap.in: built in
    there, so Setup.local leaves them out instead of failing."""
    exe = _elf(tmp_path / "exe", "-no-pie")
    make = f'#!/bin/sh\ncase " $* " in *" install "*) cp {exe} "$PREFIX/bin/python3.13" ;; esac\n'
    modules = tmp_path / "src" / "Modules"
    modules.mkdir(parents=True)
    (modules / "Setup.bootstrap.in").write_text(
        "*static*\n_opcode _opcode.c\n@MODULE_ARRAY_TRUE@array arraymodule.c\n")
    (modules / "Setup.stdlib.in").write_text(_setup_stdlib_line("math") + "\n")
    result, src, _ = _run_build_script(tmp_path, make=make, level="none",
                                       executable="bin/python3.13",
                                       extra_env={"BUILTIN_MODULES": "math _opcode array"},
                                       keep_modules=True)
    assert result.returncode == 0, result.stderr
    assert (modules / "Setup.local").read_text().splitlines() == [
        "*static*", "math mathmodule.c -DFAKE"]
    assert "note: _opcode is built in by this series' Modules/Setup.bootstrap.in" \
        in result.stderr


def test_builtin_and_not_built_modules_do_not_overlap():
    assert not set(python_recipe.BUILTIN_MODULES) & set(python_recipe.NOT_BUILT_MODULES)


def test_builtin_modules_are_checked_by_the_recipe_test():
    """The package's own test imports each of BUILTIN_MODULES and requires it built in."""
    _, files = python_recipe.files_for("3.13.5")
    assert " ".join(python_recipe.BUILTIN_MODULES) in files["recipe.yaml"]
    assert "u.find_spec(m).origin != 'built-in'" in files["recipe.yaml"]


def test_the_cpython_source_belongs_to_the_python_output_only(tmp_path):
    """A top-level source is copied into every output's work folder: the CPython tree
    is the python output's own source, and the other outputs have none."""
    _, files = python_recipe.files_for("3.13.5")
    recipe_files.write_files(tmp_path, files)
    outputs = _render(tmp_path, freethreading="yes", python_deps_profile="conda-forge",
                      python_optimization="none", c_compiler="gcc", cxx_compiler="gxx")
    sources = {name: v.recipe.to_dict().get("source", []) for name, v in outputs.items()}
    assert [s["url"] for s in sources.pop("python")] == [source_for("3.13.5").url]
    assert all(not s for s in sources.values()), sources


def test_recipe_yaml_carries_the_free_threaded_signals():
    _, files = python_recipe.files_for("3.14.10")
    data = YAML(typ="safe").load(files["recipe.yaml"])
    python = next(o for o in data["outputs"] if o["package"]["name"] == "python")
    abi = next(o for o in data["outputs"] if o["package"]["name"] == "python_abi")
    # down-weighted for 3.14t as well (conda-forge's python_abi misses it)
    for output in (python, abi):
        assert output["build"]["variant"]["down_prioritize_variant"] == "${{ down_prioritize }}"
    assert 'if freethreading == "yes" else 0' in data["context"]["down_prioritize"]
    assert python["build"]["python"]["site_packages_path"] == "${{ site_packages }}"
    assert "lib/python3.14t/site-packages" in data["context"]["site_packages"]
    assert python["requirements"]["run_exports"]["noarch"] == ["python"]
    assert python["build"]["dynamic_linking"]["rpaths"] == ["lib/"]
    assert "libzstd-dev" in data["extra"]["ftforge"]["apt_build_dependencies"]


def _bolt_build(tmp_path: Path, exe: Path, *, cdsort: bool):
    """The build script at pgo-lto-bolt with a fake llvm-bolt; `make install` copies
    ``exe`` as bin/python3.13. Returns (result, src)."""
    (tmp_path / "llvm").mkdir()
    bolt = _fake_bolt(tmp_path / "llvm", cdsort=cdsort)
    make = f'#!/bin/sh\ncase " $* " in *" install "*) cp {exe} "$PREFIX/bin/python3.13" ;; esac\n'
    result, src, _ = _run_build_script(tmp_path, make=make, level="pgo-lto-bolt",
                                       executable="bin/python3.13",
                                       extra_env={"LLVM_BOLT": str(bolt)})
    return result, src


def test_a_bolt_build_keeps_cdsort_where_llvm_bolt_has_it(tmp_path):
    """A newer llvm-bolt (LLVM 18+) knows cdsort: CPython's own flags stay as they are."""
    result, src = _bolt_build(tmp_path, _bolted(_elf(tmp_path / "exe", "-no-pie")), cdsort=True)
    assert result.returncode == 0, result.stderr
    appended = (src / "Makefile").read_text()
    assert "BOLT_BINARIES := $(BUILDPYTHON)" in appended and "hfsort" not in appended


def test_a_bolt_build_without_llvm_bolt_fails_before_configure(tmp_path):
    """No llvm-bolt where it was pointed: one line saying what to install or which level
    to build instead, and configure never ran."""
    make = '#!/bin/sh\nexit 0\n'
    result, src, _ = _run_build_script(tmp_path, make=make, level="pgo-lto-bolt",
                                       executable="bin/python3.13",
                                       extra_env={"LLVM_BOLT": str(tmp_path / "no-bolt")})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: python_optimization=pgo-lto-bolt needs llvm-bolt (tried "
        f"{tmp_path / 'no-bolt'}): apt-get install bolt-16 (Debian 12), or build with "
        "--variant python_optimization=pgo-lto"]
    assert not (src / "configure.args").exists()


def test_llvm_bolt_by_name_on_path_and_the_files_beside_it(tmp_path):
    """LLVM_BOLT may be a bare name found on PATH (as CPython's configure takes it); a
    llvm-bolt without merge-fdata beside it names merge-fdata; a path with a space
    (CPython's Makefile does not quote it) is refused before configure."""
    exe = _bolted(_elf(tmp_path / "exe", "-no-pie"))
    make = f'#!/bin/sh\ncase " $* " in *" install "*) cp {exe} "$PREFIX/bin/python3.13" ;; esac\n'
    bin_dir = tmp_path / "bin"  # _run_build_script puts it first on PATH
    bin_dir.mkdir()
    _fake_bolt(bin_dir, cdsort=False)
    result, src, _ = _run_build_script(tmp_path, make=make, level="pgo-lto-bolt",
                                       executable="bin/python3.13",
                                       extra_env={"LLVM_BOLT": "llvm-bolt"})
    assert result.returncode == 0, result.stderr
    assert f"LLVM_BOLT={bin_dir}/llvm-bolt" in (src / "configure.args").read_text()

    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "llvm-bolt").write_text("#!/bin/sh\n")
    (lonely / "llvm-bolt").chmod(0o755)
    spaced = tmp_path / "my llvm"
    spaced.mkdir()
    _fake_bolt(spaced, cdsort=False)
    for bolt, expected in ((lonely / "llvm-bolt", f"needs merge-fdata beside {lonely}/llvm-bolt"),
                           (spaced / "llvm-bolt", "holds a space")):
        again = tmp_path / f"again-{bolt.parent.name.replace(' ', '-')}"
        again.mkdir()
        result, src, _ = _run_build_script(again, make=make, level="pgo-lto-bolt",
                                           executable="bin/python3.13",
                                           extra_env={"LLVM_BOLT": str(bolt)})
        assert result.returncode == 1, result.stderr
        assert expected in result.stderr
        assert not (src / "configure.args").exists()


def test_the_build_fails_when_a_bolt_build_was_not_bolted(tmp_path):
    """pgo-lto-bolt whose installed executable has no .note.bolt_info (BOLT's step
    skipped) fails the build with a one-line reason."""
    result, _ = _bolt_build(tmp_path, _elf(tmp_path / "exe", "-no-pie"), cdsort=False)
    assert result.returncode == 1
    assert "error: bin/python3.13 was not optimized by BOLT (no .note.bolt_info section)" \
        in result.stderr
