import pytest

from ftforge.errors import UnknownPythonVersion
from ftforge.variants import PythonVariant, all_variants, conda_build_config, parse_series

CASES = [
    # series, ft, abi, spec, site-packages, suffix, build-prefix, stable abi
    ("3.13", False, "cp313", "3.13.* *_cp313", "lib/python3.13/site-packages",
     ".cpython-313-x86_64-linux-gnu.so", "py313", ".abi3.so"),
    ("3.13", True, "cp313t", "3.13.* *_cp313t", "lib/python3.13t/site-packages",
     ".cpython-313t-x86_64-linux-gnu.so", "py313t", None),
    ("3.14", False, "cp314", "3.14.* *_cp314", "lib/python3.14/site-packages",
     ".cpython-314-x86_64-linux-gnu.so", "py314", ".abi3.so"),
    ("3.14", True, "cp314t", "3.14.* *_cp314t", "lib/python3.14t/site-packages",
     ".cpython-314t-x86_64-linux-gnu.so", "py314t", None),
    ("3.15", False, "cp315", "3.15.* *_cp315", "lib/python3.15/site-packages",
     ".cpython-315-x86_64-linux-gnu.so", "py315", ".abi3.so"),
    ("3.15", True, "cp315t", "3.15.* *_cp315t", "lib/python3.15t/site-packages",
     ".cpython-315t-x86_64-linux-gnu.so", "py315t", ".abi3t.so"),
]


@pytest.mark.parametrize("series,ft,abi,spec,site,suffix,prefix,stable", CASES)
def test_variant_facts(series, ft, abi, spec, site, suffix, prefix, stable):
    v = PythonVariant(series, ft)
    assert v.abi_tag == abi
    assert v.python_spec == spec
    assert v.python_abi_spec == f"python_abi {series}.* *_{abi}"
    assert v.python_abi_run_constraint == f"python {series}.* *_{abi}"
    # The GIL interpreter's build number is raised by 100 (conda-forge's practice).
    assert v.python_build_string("abc123", 2) == f"habc123_{2 if ft else 102}_{abi}"
    assert v.python_abi_build_string(0) == f"0_{abi}"
    assert v.extension_build_string("abc123", 0) == f"{prefix}habc123_0"
    assert v.site_packages == site
    assert v.extension_suffix() == suffix
    assert v.stable_abi_suffix == stable
    assert v.py_gil_disabled == (1 if ft else 0)
    assert v.is_freethreading is ft
    assert v.recipe_freethreading == ("yes" if ft else "no")
    assert v.down_prioritize == (1 if ft else 0)
    assert v.metapackage == ("python-freethreading" if ft else "python-gil")
    assert ("--disable-gil" in v.configure_flags) is ft
    assert PythonVariant.from_abi_tag(abi) == v


def test_noarch_site_packages_is_the_gil_path_for_both():
    assert PythonVariant.ft("3.13").noarch_site_packages == "lib/python3.13/site-packages"
    assert PythonVariant.gil("3.13").noarch_site_packages == "lib/python3.13/site-packages"


@pytest.mark.parametrize("bad", ["3.12", "2.7", "3", "python3.13", "3.13.x", ""])
def test_unsupported_versions_are_refused(bad):
    with pytest.raises(UnknownPythonVersion):
        parse_series(bad)


def test_bad_abi_tag():
    with pytest.raises(UnknownPythonVersion):
        PythonVariant.from_abi_tag("cp313d")


def test_unknown_platform_has_a_clear_error():
    with pytest.raises(UnknownPythonVersion, match="win-64"):
        PythonVariant.ft("3.13").extension_suffix("win-64")


def test_conda_build_config_zips_python_with_is_freethreading():
    cfg = conda_build_config(all_variants(("3.13",)))
    assert cfg["python"] == ["3.13.* *_cp313", "3.13.* *_cp313t"]
    assert cfg["is_freethreading"] == [False, True]
    assert cfg["zip_keys"] == [["python", "is_freethreading"]]


def test_all_variants_covers_each_series_both_ways():
    assert len(all_variants()) == 6
    assert {v.abi_tag for v in all_variants()} == {
        "cp313", "cp313t", "cp314", "cp314t", "cp315", "cp315t"}
