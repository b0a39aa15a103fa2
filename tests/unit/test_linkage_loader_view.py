"""The linkage audit reads what an ELF object needs as the loader does, through its
program headers (issue 13 follow-up): damaged section headers made the reader give up
and the object's undeclared libraries and glibc versions went unchecked."""

import shutil
import struct
import subprocess

import pytest

from ftforge.channel.linkage import read_linkage
from ftforge.channel.synthetic import SyntheticPackage, write_package

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def test_damaged_section_headers_do_not_hide_what_an_object_needs(tmp_path):
    (tmp_path / "foo.c").write_text("int foo(void) { return 42; }\n")
    (tmp_path / "user.c").write_text(
        "#include <dlfcn.h>\nint foo(void);\n"
        "int user(void) { return foo() + (dlopen(\"x\", RTLD_LAZY) != 0); }\n")
    run = lambda *a: subprocess.run(a, cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", "libfoo.so.1", "foo.c")
    (tmp_path / "libfoo.so").symlink_to("libfoo.so.1")
    run("gcc", "-shared", "-fPIC", "-o", "libuser.so", "user.c", "-L.", "-lfoo")
    damaged = bytearray((tmp_path / "libuser.so").read_bytes())
    struct.pack_into("<Q", damaged, 0x28, 0xFFFFFFFF00)  # e_shoff: nowhere
    package = write_package(SyntheticPackage("user", "1.0", "h0000000_0", subdir="linux-64",
                                             files={"lib/libuser.so": bytes(damaged)}),
                            tmp_path / "in")
    (elf,) = read_linkage(package).elves
    assert "libfoo.so.1" in elf.needed and "libc.so.6" in elf.needed
    assert elf.glibc is not None and elf.glibc >= (2, 34)
