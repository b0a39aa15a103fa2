"""Archives that two readers would read differently (issue 13 follow-up): a zip whose
local headers disagree with its central directory, data after a component's tar end
marker or zstd frame, and tar headers that Python's tarfile and rattler's tar-rs name
differently. Each must be refused by the audit, while ordinary padding passes."""

from __future__ import annotations

import bz2
import hashlib
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from ftforge.channel.audit import audit_package

try:
    from compression import zstd  # Python 3.14+
except ImportError:
    from backports import zstd

STEM = "probe-1.0-0"
END = b"\0" * 1024


def _block(name: str, data: bytes, magic: bytes = b"ustar\x0000", prefix: bytes = b"",
           kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = len(data), 0o644, 1764028800, kind
    info.linkname = linkname
    head = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")[:512])
    head[257:265] = magic
    head[345:345 + len(prefix)] = prefix
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head) + data + b"\0" * (-len(data) % 512)


def _pax(fields: dict[str, str]) -> bytes:
    return tarfile.TarInfo._create_pax_generic_header(fields, tarfile.XHDTYPE, "utf-8")


def _gnu_long(name: str) -> bytes:
    return tarfile.TarInfo._create_gnu_long_header(name, tarfile.GNUTYPE_LONGNAME, "utf-8",
                                                   "strict")


def _info_tar(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    index = {"name": "probe", "version": "1.0", "build": "0", "build_number": 0,
             "subdir": "noarch", "noarch": "generic", "depends": [], "license": "MIT"}
    paths = {"paths_version": 1, "paths": [
        {"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(d).hexdigest(),
         "size_in_bytes": len(d)} for p, d in files.items()] + [
        {"_path": p, "path_type": "softlink"} for p in links]}
    return (_block("info/index.json", json.dumps(index).encode())
            + _block("info/paths.json", json.dumps(paths).encode()) + END)


def _pkg_tar(files: dict[str, bytes]) -> bytes:
    return b"".join(_block(p, d) for p, d in files.items()) + END


FILES = {"bin/tool": b"#!/bin/sh\necho benign\n"}


def _conda(tmp: Path, pkg_zst: bytes, info_zst: bytes | None = None) -> Path:
    out = tmp / f"{STEM}.conda"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        z.writestr(f"info-{STEM}.tar.zst", info_zst or zstd.compress(_info_tar(FILES)))
        z.writestr(f"pkg-{STEM}.tar.zst", pkg_zst)
    return out


def _rules(path: Path) -> set[str]:
    return {f.rule for f in audit_package(path).findings}


def test_plain_package_and_record_padding_pass(tmp_path):
    padded = _pkg_tar(FILES) + b"\0" * 9216  # padded to tarfile's 10 KiB record
    assert audit_package(_conda(tmp_path, zstd.compress(padded))).ok


def test_local_header_sizes_that_hide_an_entry_are_refused(tmp_path):
    """The central directory's pkg entry covers [benign frame][a hidden local entry];
    its local header covers only the benign frame, so a streaming client reads both."""
    good = zstd.compress(_pkg_tar(FILES) + b"\0" * (1 << 16))
    evil = zstd.compress(_pkg_tar({"bin/tool": b"#!/bin/sh\necho evil\n"}))
    name = f"pkg-{STEM}.tar.zst".encode()
    hidden = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(evil),
                         len(evil), len(evil), len(name), 0) + name + evil
    path = _conda(tmp_path, good + hidden)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        offset = z.getinfo(name.decode()).header_offset
    struct.pack_into("<3L", data, offset + 14, zlib.crc32(good), len(good), len(good))
    path.write_bytes(bytes(data))
    findings = audit_package(path).findings
    assert [f.rule for f in findings] == ["archive.member-set"]
    assert "local header" in findings[0].message and "compressed size" in findings[0].message


def test_data_after_the_tar_end_marker_is_refused(tmp_path):
    tail = _pkg_tar(FILES) + _block("bin/evil", b"echo evil\n") + END
    assert _rules(_conda(tmp_path, zstd.compress(tail))) == {"archive.trailing-data"}


@pytest.mark.parametrize("frame", ["skippable", "second"])
def test_a_second_zstd_frame_in_a_component_is_refused(tmp_path, frame):
    hidden = zstd.compress(_pkg_tar({"bin/evil": b"echo evil\n"}))
    extra = (struct.pack("<LL", 0x184D2A50, len(hidden)) + hidden if frame == "skippable"
             else hidden)
    path = _conda(tmp_path, zstd.compress(_pkg_tar(FILES)) + extra)
    assert _rules(path) == {"archive.trailing-data"}


def _smuggle(files_shown: dict[str, bytes], pkg: bytes, tmp: Path, kind: str) -> Path:
    if kind == "conda":
        return _conda(tmp, zstd.compress(pkg), zstd.compress(_info_tar(files_shown)))
    out = tmp / f"{STEM}.tar.bz2"
    whole = _info_tar(files_shown)[:-len(END)] + pkg
    out.write_bytes(bz2.compress(whole))
    return out


@pytest.mark.parametrize("kind", ["conda", "tar.bz2"])
@pytest.mark.parametrize("order", ["pax-then-gnu", "gnu-then-pax"])
def test_stacked_pax_and_gnu_names_are_refused(tmp_path, kind, order):
    data = b"echo hidden\n"
    first, second = ((_pax({"path": "share/ok.txt"}), _gnu_long("bin/evil-long-name"))
                     if order == "pax-then-gnu"
                     else (_gnu_long("bin/evil-long-name"), _pax({"path": "share/ok.txt"})))
    pkg = first + second + _block("x", data) + END
    path = _smuggle({"share/ok.txt": data}, pkg, tmp_path, kind)
    assert _rules(path) == {"archive.ambiguous-header"}


@pytest.mark.parametrize("kind", ["conda", "tar.bz2"])
def test_a_prefix_field_under_gnu_magic_is_refused(tmp_path, kind):
    data = b"echo hidden\n"
    pkg = _block("evil.sh", data, magic=b"ustar  \0", prefix=b"share") + END
    path = _smuggle({"share/evil.sh": data}, pkg, tmp_path, kind)
    assert _rules(path) == {"archive.ambiguous-header"}


def test_a_prefix_field_under_posix_magic_passes(tmp_path):
    data = b"echo fine\n"
    pkg = _block("evil.sh", data, prefix=b"share") + END
    path = _conda(tmp_path, zstd.compress(pkg), zstd.compress(_info_tar({"share/evil.sh": data})))
    assert audit_package(path).ok


# -- ELF objects read as the loader reads them ----------------------------------------------

@pytest.fixture(scope="module")
def gil_extension(tmp_path_factory) -> bytes:
    import subprocess

    tmp = tmp_path_factory.mktemp("elf")
    (tmp / "x.c").write_text("extern void _Py_Dealloc(void*);\n"
                             "void PyInit__x(void *o){ _Py_Dealloc(o); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp / "x.so"), str(tmp / "x.c")],
                   check=True)
    return (tmp / "x.so").read_bytes()


def _ft_package(tmp: Path, so: bytes) -> Path:
    from ftforge.channel.synthetic import SyntheticPackage, write_package
    from ftforge.variants import PythonVariant

    ft = PythonVariant.ft("3.13")
    package = SyntheticPackage(name="gilext", version="1.0",
                               build=ft.extension_build_string("abcdef0", 0), subdir="linux-64",
                               depends=[ft.python_abi_spec],
                               files={f"{ft.site_packages}/_x.so": so})
    out = tmp / "linux-64"
    out.mkdir(exist_ok=True)
    return Path(write_package(package, out))


def test_damaged_section_headers_do_not_hide_a_gil_module(tmp_path, gil_extension):
    bad = bytearray(gil_extension)
    struct.pack_into("<Q", bad, 0x28, 0xFFFFFFFF00)  # e_shoff: nowhere
    assert _rules(_ft_package(tmp_path, bytes(bad))) == {"abi.module-built-for-other-abi"}


@pytest.mark.parametrize("damage", ["phoff", "dynamic", "truncated"])
def test_an_elf_whose_dynamic_symbols_cannot_be_read_is_refused(tmp_path, gil_extension,
                                                                 damage):
    bad = bytearray(gil_extension)
    if damage == "phoff":
        struct.pack_into("<Q", bad, 0x20, 0xFFFFFFFF00)  # e_phoff: nowhere
    elif damage == "dynamic":  # PT_DYNAMIC -> PT_NULL: the loader finds no symbols
        phoff, = struct.unpack_from("<Q", bad, 0x20)
        phnum, = struct.unpack_from("<H", bad, 0x38)
        for i in range(phnum):
            if struct.unpack_from("<I", bad, phoff + 56 * i)[0] == 2:
                struct.pack_into("<I", bad, phoff + 56 * i, 0)
    else:
        bad = bad[:200]
    assert "abi.elf-unreadable" in _rules(_ft_package(tmp_path, bytes(bad)))


# -- members written through a symlinked directory -------------------------------------------

def _linked(tmp: Path, members: list[bytes], files: dict[str, bytes],
            links: tuple[str, ...]) -> Path:
    pkg = b"".join(members) + END
    return _conda(tmp, zstd.compress(pkg), zstd.compress(_info_tar(files, links)))


@pytest.mark.parametrize("order", ["link-first", "link-last"])
def test_a_symlink_whose_path_runs_through_a_symlinked_directory_is_refused(tmp_path, order):
    """share/d -> sub, then share/d/e -> ../../../../etc: judged as share/sub/e it stays
    inside; extracted through share/d it is a link to /etc."""
    parent = _block("share/d", b"", kind=tarfile.SYMTYPE, linkname="sub")
    child = _block("share/d/e", b"", kind=tarfile.SYMTYPE, linkname="../../../../../../../etc")
    members = [_block("share/sub/keep", b"k")] + (
        [parent, child] if order == "link-first" else [child, parent])
    path = _linked(tmp_path, members, {"share/sub/keep": b"k"}, ("share/d", "share/d/e"))
    assert _rules(path) == {"archive.through-symlink"}


def test_a_file_written_through_a_symlinked_directory_is_refused(tmp_path):
    members = [_block("share/sub/keep", b"k"),
               _block("share/d", b"", kind=tarfile.SYMTYPE, linkname="sub"),
               _block("share/d/f", b"f")]
    path = _linked(tmp_path, members, {"share/sub/keep": b"k", "share/d/f": b"f"},
                   ("share/d",))
    assert _rules(path) == {"archive.through-symlink"}


def test_links_beside_each_other_pass(tmp_path):
    members = [_block("share/sub/keep", b"k"),
               _block("share/d", b"", kind=tarfile.SYMTYPE, linkname="sub"),
               _block("share/e", b"", kind=tarfile.SYMTYPE, linkname="d/keep")]
    path = _linked(tmp_path, members, {"share/sub/keep": b"k"}, ("share/d", "share/e"))
    assert audit_package(path).ok


@pytest.mark.parametrize("kind", [tarfile.CONTTYPE, b"Z"])
def test_member_types_readers_treat_differently_are_refused(tmp_path, kind):
    """tarfile reads a contiguous or unknown-type member as a regular file; other
    readers skip it or refuse the archive."""
    data = b"echo hidden\n"
    pkg = _block("bin/odd", data, kind=kind) + END
    path = _conda(tmp_path, zstd.compress(pkg), zstd.compress(_info_tar({"bin/odd": data})))
    assert "archive.member-type" in _rules(path)


def test_a_python_abi_package_shipping_compiled_code_is_refused(tmp_path, gil_extension):
    """python_abi's build string is its claim, so no ABI rule looks at its files: a
    'python_abi' that ships a GIL module into lib/python3.13t was accepted."""
    from ftforge.channel.synthetic import SyntheticPackage, write_package
    from ftforge.variants import PythonVariant

    ft = PythonVariant.ft("3.13")
    package = SyntheticPackage("python_abi", "3.13", ft.python_abi_build_string(0),
                               subdir="linux-64", constrains=[ft.python_abi_run_constraint],
                               track_features="py_freethreading",
                               files={f"{ft.site_packages}/_x.so": gil_extension})
    path = Path(write_package(package, tmp_path / "linux-64"))
    assert _rules(path) == {"abi.compiled-in-python-abi"}


@pytest.mark.parametrize("tail", ["second-stream", "garbage"])
def test_a_tar_bz2_with_more_after_its_stream_is_refused(tmp_path, tail):
    """A second bzip2 stream (multi-stream readers continue the tar there) or other
    bytes after the first stream: refused, never silently ignored."""
    whole = _info_tar(FILES)[:-len(END)] + b"".join(_block(p, d) for p, d in FILES.items())
    hidden = _block("bin/evil", b"echo evil\n") + END
    extra = bz2.compress(hidden) if tail == "second-stream" else b"PK\x03\x04" + hidden
    path = tmp_path / f"{STEM}.tar.bz2"
    path.write_bytes(bz2.compress(whole) + extra)
    rules = _rules(path)
    assert rules and rules <= {"archive.unreadable", "archive.trailing-data"}, rules


@pytest.mark.parametrize("subdir,refused", [("osx-arm64", True), ("win-64", True),
                                            ("linux-64", False)])
def test_names_equal_after_folding_are_refused_where_clients_fold(tmp_path, subdir, refused):
    """lib/Foo.py and lib/foo.py (or café in NFC and NFD) are one file on macOS and
    Windows; on Linux they are two (ncurses' terminfo relies on that)."""
    import unicodedata

    from ftforge.channel.synthetic import SyntheticPackage, write_package

    nfc = unicodedata.normalize("NFC", "lib/caf\u00e9.py")
    for files in ({"lib/Foo.py": b"A", "lib/foo.py": b"B"},
                  {nfc: b"A", unicodedata.normalize("NFD", nfc): b"B"}):
        package = SyntheticPackage("folded", "1.0", "0", subdir=subdir, files=files)
        path = Path(write_package(package, tmp_path / subdir))
        rules = _rules(path)
        assert (rules == {"archive.folded-duplicate"}) if refused else not rules, rules
        path.unlink()


def test_a_refusal_of_twenty_thousand_extra_members_is_short(tmp_path):
    """A .conda with 20,000 unexpected members: the finding names ten and counts the
    rest, and the refusal stays a short message (it was one 2 MB line)."""
    from ftforge.channel.audit import MAX_FINDING_CHARS, PackageRefused

    out = _conda(tmp_path, zstd.compress(_pkg_tar(FILES)))
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as z:
        for i in range(20_000):
            z.writestr(f"m{i:05d}", b"")
    report = audit_package(out)
    member_set = [f for f in report.findings if f.rule == "archive.member-set"]
    assert len(member_set) == 1
    assert "unexpected m00000, m00001" in member_set[0].message
    assert "and 19990 more" in member_set[0].message
    message = PackageRefused([report]).message
    assert len(message) < 2 * MAX_FINDING_CHARS + 500, len(message)
