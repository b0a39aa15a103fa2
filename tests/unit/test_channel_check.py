"""`ftforge channel check` finds every planted violation, by file name."""

from __future__ import annotations

import subprocess
import sys

from ftforge.channel.check import (
    CHECKS,
    FILE_CHECKS,
    check_channels,
    check_records,
    missing_twins,
)
from ftforge.variants import PythonVariant

FT, GIL = PythonVariant.ft("3.13"), PythonVariant.gil("3.13")


def rec(name, version, build, depends=(), subdir="linux-64", **extra) -> dict:
    return {"name": name, "version": version, "build": build, "depends": list(depends),
            "subdir": subdir, "fn": f"{name}-{version}-{build}.conda", **extra}


GOOD = [
    rec("python", "3.13.5", FT.python_build_string("abc1234", 0), [FT.python_abi_spec],
        track_features="python-p-0"),
    rec("python", "3.13.5", GIL.python_build_string("abc1234", 0), [GIL.python_abi_spec]),
    rec("python_abi", "3.13", FT.python_abi_build_string(0), subdir="noarch",
        constrains=[FT.python_abi_run_constraint], track_features="python_abi-p-0"),
    rec("python_abi", "3.13", GIL.python_abi_build_string(0), subdir="noarch",
        constrains=[GIL.python_abi_run_constraint]),
    rec(FT.metapackage, "3.13.5", "0_cp313t", ["python 3.13.5.*", FT.python_abi_spec],
        subdir="noarch"),
    rec("msgpack-python", "1.2.4", FT.extension_build_string("d66913e", 0),
        ["python >=3.13,<3.14.0a0", FT.python_abi_spec]),
    rec("idna", "3.20", "pyh7511447_0", ["python >=3.10"], subdir="noarch", noarch="python"),
    # the GIL twins that make the channel variant-complete
    rec(GIL.metapackage, "3.13.5", "0_cp313", ["python 3.13.5.*", GIL.python_abi_spec],
        subdir="noarch"),
    rec("msgpack-python", "1.2.4", GIL.extension_build_string("d66913e", 0),
        ["python >=3.13,<3.14.0a0", GIL.python_abi_spec]),
    # ... and of the free-threaded records planted below for other checks
    rec("python", "3.13.6", GIL.python_build_string("abc1234", 100), [GIL.python_abi_spec]),
    rec("python", "3.13.7", GIL.python_build_string("abc1234", 100), [GIL.python_abi_spec]),
    rec(GIL.metapackage, "3.13.6", "0_cp313", ["python 3.13.6.*", GIL.python_abi_spec],
        subdir="noarch"),
    rec("both", "1.0", GIL.extension_build_string("1234567", 0), [GIL.python_abi_spec]),
    rec("outranked", "1.0", GIL.extension_build_string("1234567", 0), [GIL.python_abi_spec]),
]

PLANTED = {
    "python-abi-missing": rec("wrong", "1.0", "h1234567_0", ["python >=3.13"]),
    "python-abi-count": rec("both", "1.0", "py313th1234567_0",
                            [FT.python_abi_spec, GIL.python_abi_spec]),
    "marker-disagrees": rec("liar", "1.0", FT.extension_build_string("1234567", 0),
                            [GIL.python_abi_spec]),
    "not-down-weighted": rec("python", "3.13.6", FT.python_build_string("abc1234", 0),
                             [FT.python_abi_spec]),
    "abi-not-constrained": rec("python_abi", "3.13", "1_cp313t", subdir="noarch",
                               track_features="python_abi-p-0"),
    "interpreter-abi": rec("python", "3.13.7", FT.python_build_string("abc1234", 0),
                           [GIL.python_abi_spec], track_features="python-p-0"),
    "metapackage-abi": rec(FT.metapackage, "3.13.6", "0_cp313t", ["python 3.13.6.*"],
                           subdir="noarch"),
    "abi-contradiction": rec("never", "1.0", GIL.extension_build_string("1234567", 0),
                             [GIL.python_abi_spec], constrains=["python <0"]),
    "gil-down-weighted": rec("python_abi", "3.13", GIL.python_abi_build_string(1),
                             subdir="noarch", constrains=[GIL.python_abi_run_constraint],
                             track_features="anything"),
    "twin-outranked": rec("outranked", "1.0", FT.extension_build_string("1234567", 1),
                          [FT.python_abi_spec], build_number=1),
    "variant-incomplete": rec("lonely", "1.0", FT.extension_build_string("1234567", 0),
                              [FT.python_abi_spec]),
}


def all_violations(records, channel=""):
    return check_records(records, channel) + missing_twins(records, channel)


def test_the_good_records_pass():
    assert all_violations(GOOD) == []


def test_every_planted_violation_is_found_by_file_name():
    assert set(PLANTED) == set(CHECKS)
    violations = all_violations(GOOD + list(PLANTED.values()), "planted")
    found = {(v.check, v.fn) for v in violations}
    for check, record in PLANTED.items():
        assert (check, record["fn"]) in found, check
    assert len(violations) == len(PLANTED), violations
    print(f"\nchannel check: {len(PLANTED)} planted violations found of {len(GOOD) + len(PLANTED)}")


def test_cli_prints_every_violation_and_fails(tmp_path):
    import json

    channel = tmp_path / "planted"
    for sub in ("noarch", "linux-64"):
        (channel / sub).mkdir(parents=True)
        records = {r["fn"]: {k: v for k, v in r.items() if k != "fn"}
                   for r in GOOD + list(PLANTED.values()) if r["subdir"] == sub}
        (channel / sub / "repodata.json").write_text(json.dumps(
            {"info": {"subdir": sub}, "packages": {}, "packages.conda": records}))
    count, violations = check_channels([channel], files=False)  # repodata only: no files here
    assert count == len(GOOD) + len(PLANTED) and len(violations) == len(PLANTED)
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "channel", "check",
                             "--no-files", str(channel)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    for record in PLANTED.values():
        assert record["fn"] in result.stdout
    assert f"{len(PLANTED)} violation(s)" in result.stderr


def test_a_gil_twin_in_another_subdir_or_version_does_not_count():
    ext = rec("lonely", "1.0", FT.extension_build_string("1234567", 0), [FT.python_abi_spec])
    elsewhere = [
        rec("lonely", "1.0", GIL.extension_build_string("1234567", 0), [GIL.python_abi_spec],
            subdir="linux-aarch64"),
        rec("lonely", "0.9", GIL.extension_build_string("1234567", 0), [GIL.python_abi_spec]),
        rec("lonely", "1.0", PythonVariant.gil("3.14").extension_build_string("1234567", 0),
            [PythonVariant.gil("3.14").python_abi_spec]),
    ]
    found = missing_twins([ext, *elsewhere])
    assert [(v.check, v.fn) for v in found] == [("variant-incomplete", ext["fn"])]
    assert "python_abi 3.13.* *_cp313" in found[0].message and "linux-64/" in found[0].message
    twin = rec("lonely", "1.0", GIL.extension_build_string("7654321", 2), [GIL.python_abi_spec])
    assert missing_twins([ext, *elsewhere, twin]) == []


def test_check_on_a_missing_or_non_channel_directory_is_an_error(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        result = subprocess.run([sys.executable, "-m", "ftforge.cli", "channel", "check",
                                 str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert str(path) in result.stderr and "ok" not in result.stdout


# -- every spelling of a free-threaded pin needs its twin (issue 13 follow-up) ---------------

FT_PINS = {
    "equals": dict(depends=["python_abi=3.13=*_cp313t"]),
    "bracket": dict(depends=["python_abi[build=*_cp313t]"]),
    "channel": dict(depends=["conda-forge::python_abi 3.13.* *_cp313t"]),
    "spaces": dict(depends=["python_abi  *  *_cp313t"]),
    "constrains": dict(constrains=["python_abi * *_cp313t"]),
    "python": dict(depends=["python 3.13.* *_cp313t"]),
    "metapackage": dict(depends=["python-freethreading"]),
}


def test_every_spelling_of_a_freethreaded_pin_needs_a_gil_twin():
    for spelling, fields in FT_PINS.items():
        lone = rec("sw", "1.0", "h1_0", subdir="noarch", noarch="python", **fields)
        found = [v.check for v in missing_twins([lone])]
        assert found == ["variant-incomplete"], spelling
        twin = rec("sw", "1.0", "h1_1", subdir="noarch", noarch="python",
                   depends=["python_abi 3.13.* *_cp313"])
        assert missing_twins([lone, twin]) == [], spelling


def test_a_spec_admitting_both_abis_is_not_a_pin():
    for depends in (["python >=3.13,<3.14.0a0"], ["python_abi"], ["python_abi 3.13.*"],
                    ["python-freethreading-docs"]):
        assert missing_twins([rec("free", "1.0", "h1_0", depends)]) == [], depends


def test_blank_track_features_do_not_down_weight():
    for blank in ("", "   ", " , "):
        interpreter = rec("python", "3.13.5", FT.python_build_string("abc1234", 0),
                          [FT.python_abi_spec], track_features=blank)
        assert [v.check for v in check_records([interpreter])] == ["not-down-weighted"], blank


def test_the_gil_interpreter_twin_must_outrank_the_freethreaded_one():
    ft = rec("python", "3.13.5", FT.python_build_string("abc1234", 200), [FT.python_abi_spec],
             track_features="py_freethreading", build_number=200)
    gil = rec("python", "3.13.5", GIL.python_build_string("abc1234", 0), [GIL.python_abi_spec],
              build_number=100)
    assert [(v.check, v.fn) for v in missing_twins([ft, gil])] == [("twin-outranked", ft["fn"])]
    assert missing_twins([{**ft, "build_number": 100}, gil]) == []


def test_a_platform_package_on_python_spelled_without_spaces_must_pin_an_abi():
    for spec in ("python>=3.13", "python[version='>=3.13']", "conda-forge::python >=3.13"):
        record = rec("tight", "1.0", "h1234567_0", [spec])
        assert [v.check for v in check_records([record])] == ["python-abi-missing"], spec


def test_python_abi_may_constrain_python_in_any_spelling_but_only_to_its_own_abi():
    for spec, ok in (("python=3.13=*_cp313t", True), ("python[build=*_cp313t]", True),
                     ("python 3.13.* *_cp313", False), ("python 3.13.*", False)):
        record = rec("python_abi", "3.13", FT.python_abi_build_string(0), subdir="noarch",
                     constrains=[spec], track_features="python_abi-p-0")
        found = [v.check for v in check_records([record])]
        assert found == ([] if ok else ["abi-not-constrained"]), spec


def test_an_uninstallable_gil_twin_is_reported():
    """A GIL twin that constrains python away satisfies 'a twin exists' but can never be
    installed: solvers are left with the free-threaded build."""
    ft = rec("uy", "1.0", FT.extension_build_string("1234567", 0), [FT.python_abi_spec])
    for bad_twin in ({"constrains": ["python <0"]}, {"constrains": ["python_abi * *_cp313t"]},
                     {"depends": ["python 3.13.* *_cp313t"]}):
        gil = rec("uy", "1.0", GIL.extension_build_string("1234567", 0),
                  [GIL.python_abi_spec] + bad_twin.get("depends", []),
                  constrains=bad_twin.get("constrains", []))
        found = [v.check for v in check_records([ft, gil]) + missing_twins([ft, gil])]
        assert "abi-contradiction" in found, bad_twin


def test_the_index_is_checked_against_the_files_it_lists(tmp_path):
    """A published channel, then each way its files and index can part: a listed file
    gone, a file of another size, a file with other bytes of the same size (--hashes),
    a package file no index lists. Each is named with its check; a clean channel is ok."""
    import json

    from ftforge.channel.publish import publish
    from ftforge.channel.synthetic import SyntheticPackage, write_package

    def pure(name: str) -> SyntheticPackage:
        return SyntheticPackage(name=name, version="1.0", build="pyh4616a5c_0", subdir="noarch",
                                noarch="python", depends=["python >=3.10"],
                                files={f"site-packages/{name}/__init__.py": b"x = 1\n"})

    channel = tmp_path / "ch"
    publish([write_package(pure(n), tmp_path / "in") for n in ("gone", "grown", "swapped",
                                                                "kept")], channel)
    assert check_channels([channel], hashes=True)[1] == []
    noarch = channel / "noarch"
    (noarch / "gone-1.0-pyh4616a5c_0.conda").unlink()
    with open(noarch / "grown-1.0-pyh4616a5c_0.conda", "ab") as handle:
        handle.write(b"\0")
    swapped = noarch / "swapped-1.0-pyh4616a5c_0.conda"
    data = bytearray(swapped.read_bytes())
    data[-1] ^= 0xFF
    swapped.write_bytes(bytes(data))
    (noarch / "stray-1.0-pyh4616a5c_0.conda").write_bytes(b"not listed")
    found = {(v.check, v.fn) for v in check_channels([channel], hashes=True)[1]}
    assert found == {("file-missing", "gone-1.0-pyh4616a5c_0.conda"),
                     ("file-size", "grown-1.0-pyh4616a5c_0.conda"),
                     ("file-sha256", "swapped-1.0-pyh4616a5c_0.conda"),
                     ("file-unlisted", "stray-1.0-pyh4616a5c_0.conda")}
    assert {check for check, _ in found} == set(FILE_CHECKS)
    # without --hashes the same-size change is not read
    assert ("file-sha256", swapped.name) not in {
        (v.check, v.fn) for v in check_channels([channel])[1]}
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "channel", "check", "--hashes",
                             str(channel)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[file-unlisted]" in result.stdout and "ftforge channel reindex" in result.stdout
    assert json.loads((noarch / "repodata.json").read_text())  # the check wrote nothing
