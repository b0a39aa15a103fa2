"""The cause of a failed build, read from its log; the hint names the package to add."""

from pathlib import Path

import pytest

from ftforge.build.failure import diagnose, library

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "build-logs"


def _read(name: str) -> str:
    return (LOGS / name).read_text()


def test_pillow_missing_jpeg_names_libjpeg_turbo_not_subprocess_exited():
    found = diagnose(_read("pillow-no-jpeg.log"))
    assert found.cause.endswith("The headers or library files could not be found for jpeg,")
    assert "subprocess-exited-with-error" not in found.summary()
    assert found.conda_packages == ["libjpeg-turbo"]
    hint = found.hint("LOG")
    assert "`libjpeg-turbo`" in hint and "--apt libjpeg-dev" in hint and "LOG" in hint


def test_lxml_needs_both_libxml2_and_libxslt():
    found = diagnose(_read("lxml-no-libxml2.log"))
    assert found.conda_packages == ["libxml2", "libxslt"]
    assert "--apt libxml2-dev --apt libxslt1-dev" in found.hint("LOG")
    assert "\n" not in found.summary()


def test_silent_pure_python_fallback_reports_the_compiler_error_behind_it():
    found = diagnose(_read("fallback-to-pure.log"))
    assert found.fell_back
    summary = found.summary()
    assert summary.startswith("the build declares extension modules but the package ships none")
    assert "fatal error: zlib.h: No such file or directory" in summary
    assert found.conda_packages == ["zlib"]


def test_gil_check_failure_is_not_blamed_on_an_unrelated_error_line():
    found = diagnose(_read("gil-reenabled.log"))
    assert found.summary().startswith("the GIL was re-enabled by msgpack._cmsgpack")
    assert found.libraries == ()


@pytest.mark.parametrize("line,conda", [
    ("Package 'libffi', required by 'virtual:world', not found", "libffi"),
    ("Package yaml-0.1 was not found in the pkg-config search path.", "yaml"),
    ("The headers or library files could not be found for zlib,", "zlib"),
    ("/usr/bin/ld: cannot find -lssl: No such file or directory", "openssl"),
    ("CMake Error: Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)", "zlib"),
    ('meson.build:10:0: ERROR: Dependency "libzstd" not found, tried pkgconfig', "zstd"),
    ("src/x.c:1:10: fatal error: lzma.h: No such file or directory", "liblzma-devel"),
    ("x.c:2:10: fatal error: snappy-c.h: No such file or directory", "snappy"),
])
def test_library_lines(line, conda):
    assert diagnose(f"noise\n{line}\nmore noise\n").conda_packages == [conda]


def test_unknown_header_says_so_with_apt_file():
    found = diagnose("x.c:1:10: fatal error: frobnicate/frob.h: No such file or directory\n")
    assert found.summary() == "the C header frobnicate/frob.h is not installed"
    assert "apt-file search frobnicate/frob.h" in found.hint("LOG")


def test_a_log_without_a_cause_is_none():
    assert diagnose("all good\nScript failed with status 1\n") is None
    assert diagnose("error: subprocess-exited-with-error\n") is None


def test_library_names_come_from_clibs_with_their_debian_package():
    from ftforge.recipes import clibs

    assert library("jpeg").conda == clibs.BY_HEADER["jpeglib.h"] == "libjpeg-turbo"
    assert library("-lssl".removeprefix("-l")).debian == "libssl-dev"
    assert library("frobnicate") is None
