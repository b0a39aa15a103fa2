"""The linkage audit at publish: a package links only what it carries, what its run
dependencies in the channel carry, or glibc -- and declares the glibc it needs."""

import shutil
import subprocess

import pytest

from ftforge.channel.audit import PackageRefused
from ftforge.channel.linkage import GLIBC_LIBRARIES, check_linkage, read_linkage
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, write_package

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def elves(tmp_path_factory):
    """libfoo.so.1 (soname), and libuser.so that needs it and dlopen@GLIBC_2.34."""
    d = tmp_path_factory.mktemp("elf")
    (d / "foo.c").write_text("int foo(void) { return 42; }\n")
    (d / "user.c").write_text(
        "#include <dlfcn.h>\nint foo(void);\n"
        "int user(void) { return foo() + (dlopen(\"x\", RTLD_LAZY) != 0); }\n")
    (d / "plain.c").write_text("int plain(void) { return 1; }\n")
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)  # noqa: E731
    run("gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", "libfoo.so.1", "foo.c")
    (d / "libfoo.so").symlink_to("libfoo.so.1")
    run("gcc", "-shared", "-fPIC", "-o", "libuser.so", "user.c", "-L.", "-lfoo")
    run("gcc", "-shared", "-fPIC", "-o", "libplain.so", "plain.c")
    return {name: (d / name).read_bytes() for name in ("libfoo.so.1", "libuser.so", "libplain.so")}


def _pkg(tmp_path, name, files, depends=(), build="h0000000_0"):
    return write_package(SyntheticPackage(name, "1.0", build, subdir="linux-64",
                                          depends=list(depends), files=files),
                         tmp_path / "in")


def _channel_state(channel):
    return sorted(str(p.relative_to(channel)) for p in channel.rglob("*")
                  if p.is_file() and ".ftforge" not in p.parts)


def test_reads_needed_libraries_and_glibc_versions(tmp_path, elves):
    user = _pkg(tmp_path, "user", {"lib/libuser.so": elves["libuser.so"]})
    linkage = read_linkage(user)
    (elf,) = linkage.elves
    assert elf.path == "lib/libuser.so"
    assert "libfoo.so.1" in elf.needed and "libc.so.6" in elf.needed
    assert elf.glibc is not None and elf.glibc >= (2, 34)  # dlopen moved into libc in 2.34
    assert "libc.so.6" in GLIBC_LIBRARIES


def test_refuses_a_library_nothing_in_the_channel_provides(tmp_path, elves):
    channel = tmp_path / "channel"
    publish([_pkg(tmp_path, "plain", {"lib/libplain.so": elves["libplain.so"]})], channel)
    before = _channel_state(channel)
    user = _pkg(tmp_path, "user", {"lib/libuser.so": elves["libuser.so"]},
                depends=["__glibc >=2.36"])
    with pytest.raises(PackageRefused) as info:
        publish([user], channel)
    text = str(info.value)
    assert "lib/libuser.so needs libfoo.so.1" in text
    assert "no package in the channel provides it" in text
    assert "linkage.unprovided-library" in text
    assert _channel_state(channel) == before  # channel unchanged


def test_names_the_providing_package_when_the_dependency_is_missing(tmp_path, elves):
    channel = tmp_path / "channel"
    publish([_pkg(tmp_path, "libfoo", {"lib/libfoo.so.1": elves["libfoo.so.1"]})], channel)
    user = _pkg(tmp_path, "user", {"lib/libuser.so": elves["libuser.so"]},
                depends=["__glibc >=2.36"])
    with pytest.raises(PackageRefused, match=r"the channel's libfoo provides it, but user "
                                             r"does not depend on it"):
        publish([user], channel)


def test_accepts_a_library_from_a_run_dependency_in_the_channel_or_the_same_publish(
        tmp_path, elves):
    libfoo = _pkg(tmp_path, "libfoo", {"lib/libfoo.so.1": elves["libfoo.so.1"]})
    user = _pkg(tmp_path, "user", {"lib/libuser.so": elves["libuser.so"]},
                depends=["libfoo >=1.0,<2.0a0", "__glibc >=2.36"])
    # together in one publish
    result = publish([libfoo, user], tmp_path / "one")
    assert len(result.added) == 2
    # or the provider already in the channel
    publish([libfoo], tmp_path / "two")
    assert len(publish([user], tmp_path / "two").added) == 1


def test_the_same_library_inside_the_package_is_fine(tmp_path, elves):
    both = _pkg(tmp_path, "both", {"lib/libuser.so": elves["libuser.so"],
                                   "lib/libfoo.so.1": elves["libfoo.so.1"]},
                depends=["__glibc >=2.36"])
    assert check_linkage([both]) == {both: []}


def test_system_profile_marker_must_list_the_system_library(tmp_path, elves):
    listed = _pkg(tmp_path, "sys-listed", {
        "lib/libuser.so": elves["libuser.so"],
        "share/ftforge/linkage/sys-listed.txt":
            b"# linked from the build machine\nlibfoo.so.1 /usr/lib/x86_64-linux-gnu/libfoo.so.1\n"},
        depends=["__glibc >=2.36"])
    unlisted = _pkg(tmp_path, "sys-unlisted", {
        "lib/libuser.so": elves["libuser.so"],
        "share/ftforge/linkage/sys-unlisted.txt": b"libbar.so.2 /usr/lib/libbar.so.2\n"},
        depends=["__glibc >=2.36"])
    found = check_linkage([listed, unlisted])
    assert found[listed] == []
    assert [f.rule for f in found[unlisted]] == ["linkage.unprovided-library"]


def test_glibc_symbol_versions_must_be_declared(tmp_path, elves):
    bare = _pkg(tmp_path, "bare", {"lib/libuser.so": elves["libuser.so"],
                                   "lib/libfoo.so.1": elves["libfoo.so.1"]})
    old = _pkg(tmp_path, "old", {"lib/libuser.so": elves["libuser.so"],
                                 "lib/libfoo.so.1": elves["libfoo.so.1"]},
               depends=["__glibc >=2.17"])
    found = check_linkage([bare, old])
    for pkg, has in ((bare, "no __glibc"), (old, "__glibc >=2.17")):
        (finding,) = found[pkg]
        assert finding.rule == "linkage.glibc-undeclared"
        assert "needs glibc symbols GLIBC_2.3" in finding.message and has in finding.message
    # a library needing only old symbol versions needs no declaration
    plain = _pkg(tmp_path, "plain", {"lib/libplain.so": elves["libplain.so"]})
    assert check_linkage([plain]) == {plain: []}
