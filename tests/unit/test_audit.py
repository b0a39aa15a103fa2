"""The channel audit: a corpus of bad packages, each refused with its own rule and
file, and the channel unchanged after each attempt."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from ftforge.channel.audit import RULES, Limits, PackageRefused, audit_package
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import Member, SyntheticPackage, write_package
from ftforge.variants import PythonVariant

FT = PythonVariant.ft("3.13")
GIL = PythonVariant.gil("3.13")
SMALL = Limits(max_total_bytes=1 << 20, max_members=64)


def _compile(tmp: Path, name: str, body: str) -> bytes:
    """A real shared object whose undefined symbols are what a real module links."""
    src = tmp / f"{name}.c"
    src.write_text(body)
    out = tmp / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def modules(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("so")
    return {
        # Py_DECREF in a GIL build calls _Py_Dealloc; in a free-threaded one _Py_DecRefShared.
        "gil": _compile(tmp, "gil", "extern void _Py_Dealloc(void*);\n"
                        "void PyInit_m(void *o){ _Py_Dealloc(o); }\n"),
        "ft": _compile(tmp, "ft", "extern void _Py_DecRefShared(void*);\n"
                       "extern void _Py_MergeZeroLocalRefcount(void*);\n"
                       "void PyInit_m(void *o){ _Py_DecRefShared(o); "
                       "_Py_MergeZeroLocalRefcount(o); }\n"),
    }


def ext(variant: PythonVariant, name: str = "m") -> str:
    return f"{variant.site_packages}/pkg/{name}{variant.extension_suffix()}"


def compiled(variant: PythonVariant, files: dict[str, bytes], **kw) -> SyntheticPackage:
    kw.setdefault("depends", [variant.python_abi_spec, f"python >={variant.series},<3.14.0a0"])
    return SyntheticPackage(
        name=kw.pop("name", "pkg"), version="1.0",
        build=kw.pop("build", variant.extension_build_string("abcdef0", 0)),
        subdir="linux-64", files=files, **kw)


def _bad_cases(modules: dict[str, bytes]) -> dict[str, tuple[str, object]]:
    """case id -> (expected rule, SyntheticPackage or a callable(tmp) -> Path)."""
    ok_ft = {ext(FT): modules["ft"]}

    def truncated(tmp: Path) -> Path:
        good = write_package(compiled(FT, ok_ft), tmp / "src")
        data = good.read_bytes()
        target = tmp / good.name
        target.write_bytes(data[: len(data) // 2])
        return target

    def wrong_magic(tmp: Path) -> Path:
        target = tmp / "pkg-1.0-py313thabcdef0_0.conda"
        target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
        return target

    def no_index(tmp: Path) -> Path:
        target = tmp / "pkg-1.0-0.tar.bz2"
        with tarfile.open(target, "w:bz2") as tar:
            info = tarfile.TarInfo("info/paths.json")
            payload = b'{"paths": [], "paths_version": 1}'
            info.size = len(payload)
            import io
            tar.addfile(info, io.BytesIO(payload))
        return target

    def duplicate_key(tmp: Path) -> Path:
        """index.json with "license" twice: Python's json keeps the last, rattler refuses it."""
        import io

        good = write_package(compiled(FT, ok_ft), tmp / "src", fmt=".tar.bz2")
        target = tmp / good.name
        with tarfile.open(good) as src, tarfile.open(target, "w:bz2") as out:
            for member in src.getmembers():
                data = src.extractfile(member).read()
                if member.name == "info/index.json":
                    data = data.replace(b'{', b'{"license": "MIT", "license": "GPL", ', 1)
                    member.size = len(data)
                out.addfile(member, io.BytesIO(data))
        return target

    noarch = dict(name="purepkg", build="pyh4616a5c_0", subdir="noarch", noarch="python")
    return {
        "duplicate-key": ("metadata.duplicate-key", duplicate_key),
        "truncated": ("archive.unreadable", truncated),
        "wrong-magic": ("archive.unreadable", wrong_magic),
        "absolute-path": ("archive.absolute-path", compiled(
            FT, ok_ft, extra_members=[Member("/etc/cron.d/evil", b"x")])),
        "parent-path": ("archive.parent-path", compiled(
            FT, ok_ft, extra_members=[Member("lib/../../outside.txt", b"x")])),
        "symlink-escape": ("archive.link-escape", compiled(
            FT, ok_ft, extra_members=[Member("lib/evil", type=tarfile.SYMTYPE,
                                             linkname="../../../etc/shadow")])),
        "hardlink-escape": ("archive.link-escape", compiled(
            FT, ok_ft, extra_members=[Member("lib/evil", type=tarfile.LNKTYPE,
                                             linkname="../etc/passwd")])),
        "device-file": ("archive.special-file", compiled(
            FT, ok_ft, extra_members=[Member("lib/null", type=tarfile.CHRTYPE)])),
        "tar-bomb": ("archive.too-large", compiled(
            FT, {**ok_ft, "share/zeros.bin": b"\0" * (2 << 20)})),
        "too-many-members": ("archive.too-many-members", compiled(
            FT, {**ok_ft, **{f"share/f{i}.txt": b"x" for i in range(100)}})),
        "filename-mismatch": ("metadata.filename", compiled(
            FT, ok_ft, index_overrides={"version": "2.0"})),
        "sha256-mismatch": ("metadata.paths-sha256", compiled(
            FT, ok_ft, paths_overrides={ext(FT): {"sha256": "0" * 64}})),
        "size-mismatch": ("metadata.paths-size", compiled(
            FT, ok_ft, paths_overrides={ext(FT): {"size_in_bytes": 1}})),
        "unlisted-file": ("metadata.paths-unlisted", compiled(
            FT, ok_ft, extra_members=[Member("lib/python3.13t/site-packages/pkg/x.py", b"")])),
        "no-index-json": ("metadata.index-missing", no_index),
        "abi3-in-313t": ("abi.abi3-in-freethreaded", compiled(
            FT, {f"{FT.site_packages}/pkg/m.abi3.so": modules["gil"]})),
        "gil-module-in-ft": ("abi.gil-module-in-freethreaded", compiled(
            FT, {ext(FT): modules["ft"], f"{FT.site_packages}/pkg/g{GIL.extension_suffix()}":
                 modules["gil"]})),
        "ft-module-in-gil": ("abi.freethreaded-module-in-gil", compiled(
            GIL, {f"{GIL.site_packages}/pkg/m{FT.extension_suffix()}": modules["ft"]})),
        "gil-so-renamed-ft": ("abi.module-built-for-other-abi", compiled(
            FT, {ext(FT): modules["gil"]})),
        "two-python-abi": ("abi.python-abi-count", compiled(
            FT, ok_ft, depends=[FT.python_abi_spec, GIL.python_abi_spec])),
        "python-pin-without-abi": ("abi.python-abi-count", compiled(
            FT, ok_ft, depends=["python >=3.13"])),
        "marker-disagrees": ("abi.marker-disagrees", compiled(
            FT, ok_ft, depends=[GIL.python_abi_spec])),
        "wrong-series": ("abi.wrong-series", compiled(
            FT, {f"{FT.site_packages}/pkg/m{PythonVariant.ft('3.14').extension_suffix()}":
                 modules["ft"]})),
        "compiled-in-noarch": ("abi.compiled-in-noarch", SyntheticPackage(
            version="1.0", files={"site-packages/purepkg/m.abi3.so": modules["gil"]},
            depends=["python >=3.10"], **noarch)),
    }


def _snapshot(channel: Path) -> dict[str, str]:
    return {str(p.relative_to(channel)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(channel.rglob("*")) if p.is_file() and ".ftforge" not in p.parts}


@pytest.fixture
def channel(tmp_path, modules) -> Path:
    channel = tmp_path / "channel"
    good = [write_package(compiled(FT, {ext(FT): modules["ft"]}, name="good"), tmp_path / "good"),
            write_package(compiled(GIL, {ext(GIL): modules["gil"]}, name="good"),
                          tmp_path / "good")]
    publish(good, channel)
    return channel


def test_a_valid_package_passes_in_both_formats(tmp_path, modules):
    for fmt in (".conda", ".tar.bz2"):
        path = write_package(compiled(FT, {ext(FT): modules["ft"]}), tmp_path / fmt, fmt=fmt)
        report = audit_package(path)
        assert report.ok, report.findings
        assert report.record.name == "pkg" and report.record.subdir == "linux-64"
        assert report.members == 4  # index.json, paths.json, about.json, the module


def test_every_bad_package_is_refused_by_its_own_rule_and_the_channel_is_unchanged(
        tmp_path, modules, channel):
    cases = _bad_cases(modules)
    assert len(cases) >= 15
    before = _snapshot(channel)
    seen_rules, messages = set(), set()
    for case, (rule, spec) in cases.items():
        work = tmp_path / case
        work.mkdir()
        path = spec(work) if callable(spec) else write_package(spec, work)
        report = audit_package(path, SMALL)
        rules = {f.rule for f in report.findings}
        assert rule in rules, f"{case}: expected {rule}, got {report.findings}"
        assert rule in RULES
        with pytest.raises(PackageRefused) as refused:
            publish([path], channel, limits=SMALL)
        text = str(refused.value)
        assert path.name in text and f"[{rule}]" in text, text
        finding = next(f for f in report.findings if f.rule == rule)
        if finding.member:  # the refusal names the file inside the package
            assert finding.member in text
        messages.add(str(finding))
        seen_rules.add(rule)
        assert _snapshot(channel) == before, f"{case}: the channel changed"
    assert len(messages) == len(cases), "each bad package gets its own message"
    print(f"\naudit corpus: {len(cases)} bad packages refused, {len(seen_rules)} distinct rules")


def test_tar_bomb_is_refused_without_expanding_it(tmp_path, modules):
    # 64 MiB of zeros compress to a few KiB; the audit stops at the header past the cap.
    bomb = compiled(FT, {ext(FT): modules["ft"], "share/bomb.bin": b"\0" * (64 << 20)})
    path = write_package(bomb, tmp_path)
    assert path.stat().st_size < 100_000
    report = audit_package(path, Limits(max_total_bytes=8 << 20))
    assert [f.rule for f in report.findings] == ["archive.too-large"]
    assert report.findings[0].member == "share/bomb.bin"


def test_tar_bz2_absolute_path_is_refused(tmp_path, modules):
    pkg = compiled(FT, {ext(FT): modules["ft"]}, extra_members=[Member("/tmp/x", b"x")])
    report = audit_package(write_package(pkg, tmp_path, fmt=".tar.bz2"))
    assert "archive.absolute-path" in {f.rule for f in report.findings}


def test_abi3t_is_allowed_for_315t_only(tmp_path, modules):
    ft315 = PythonVariant.ft("3.15")
    ok = compiled(ft315, {f"{ft315.site_packages}/pkg/m.abi3t.so": modules["ft"]})
    assert audit_package(write_package(ok, tmp_path / "a")).ok
    bad = compiled(FT, {f"{FT.site_packages}/pkg/m.abi3t.so": modules["ft"]})
    rules = {f.rule for f in audit_package(write_package(bad, tmp_path / "b")).findings}
    assert rules == {"abi.abi3-in-freethreaded"}


def test_gil_package_keeps_abi3(tmp_path, modules):
    pkg = compiled(GIL, {f"{GIL.site_packages}/pkg/m.abi3.so": modules["gil"]})
    assert audit_package(write_package(pkg, tmp_path)).ok


def test_a_refusal_lists_a_bounded_number_of_findings(tmp_path):
    """A package with 100,000 findings (and a second, smaller one) refuses in a
    message of a bounded size that counts what it leaves out."""
    from ftforge.channel.audit import SHOWN_IN_ALL, SHOWN_PER_PACKAGE, AuditReport, Finding

    many = AuditReport(tmp_path / "many-1.0-0.conda",
                       findings=[Finding("paths.escape", f"member {i} escapes", f"m{i}")
                                 for i in range(100_000)]
                       + [Finding("abi.mismatch", "the one finding of its rule")])
    few = AuditReport(tmp_path / "few-1.0-0.conda",
                      findings=[Finding("metadata.index-missing", "no index")])
    message = PackageRefused([many, few]).message
    lines = message.splitlines()[1:]
    assert len(lines) <= SHOWN_IN_ALL + 4
    assert sum(ln.strip().startswith("many-1.0-0.conda: [") for ln in lines) \
        == SHOWN_PER_PACKAGE
    assert f"many-1.0-0.conda: ... and {100_001 - SHOWN_PER_PACKAGE} more findings" in message
    assert "[abi.mismatch] the one finding of its rule" in message  # every rule is shown
    assert "few-1.0-0.conda: [metadata.index-missing] no index" in message
    # past the cap, every refused package is still named
    crowd = [AuditReport(tmp_path / f"p{k}-1.0-0.conda",
                         findings=[Finding("x.y", f"m{i}") for i in range(30)])
             for k in range(8)]
    message = PackageRefused(crowd).message
    assert len(message.splitlines()) <= SHOWN_IN_ALL + 4
    assert all(f"p{k}-1.0-0.conda" in message for k in range(8))
    shown = sum("[x.y]" in line for line in message.splitlines())
    assert f"({8 * 30 - shown} findings not shown in all)" in message


def test_a_refusal_cuts_a_long_finding(tmp_path):
    """One finding of 100,000 characters is cut in the refusal (`channel audit` shows it)."""
    from ftforge.channel.audit import MAX_FINDING_CHARS, AuditReport, Finding

    long = AuditReport(tmp_path / "long-1.0-0.conda",
                       findings=[Finding("paths.escape", "x" * 100_000)])
    message = PackageRefused([long]).message
    assert len(message) < MAX_FINDING_CHARS + 300
    assert "x" * 100 + " [...]" in message
