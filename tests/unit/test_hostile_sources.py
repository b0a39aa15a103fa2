"""A hostile corpus for the PyPI reader (issue 13 items 3, 4, 12 and the `recipe pypi`
crashes): index documents, URLs, file names and sdists generated here. Every entry is
refused with a one-line message naming the file or URL and the rule, and nothing is
written outside the directory the reader was given (the whole temporary tree is
snapshotted before and after). Then the same properties under hypothesis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftforge import pypi
from ftforge.errors import FtforgeError
from ftforge.limits import SourceLimits
from ftforge.pypi import PyPIError
from ftforge.recipes.files import RecipeOutputError, recipe_dir, write_files
from ftforge.recipes.sdist import SdistError, inspect_sdist

BODY = b"pretend sdist bytes"
SHA = hashlib.sha256(BODY).hexdigest()
SMALL = SourceLimits(max_index_bytes=20_000, max_sdist_bytes=1_000, max_members=20,
                     max_unpacked_bytes=100_000, max_header_bytes=4096,
                     max_metadata_bytes=64_000)
SDIST_LIMITS = dataclasses.replace(SMALL, max_sdist_bytes=1 << 20)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind and content hash (links not followed)."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_file():
            state[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[rel] = ("dir",)
    return state


def entry(**overrides):
    base = {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
            "packagetype": "sdist", "digests": {"sha256": SHA}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def doc_with(*files, info=None):
    return {"info": info if info is not None else {"name": "demo", "version": "1.0"},
            "releases": {"1.0": list(files)}}


def index_cases(root: Path) -> dict[str, tuple[object, tuple[str, ...]]]:
    """kind -> (JSON document or raw body, words the refusal must contain)."""
    victim = root / "victim.tar.gz"
    return {
        "absolute-filename": (doc_with(entry(filename=str(victim))), ("not a plain file name",)),
        "dotdot-filename": (doc_with(entry(filename="../victim.tar.gz")), ("not a plain file name",)),
        "deep-dotdot": (doc_with(entry(filename="../../../../victim.tar.gz")),
                        ("not a plain file name",)),
        "subdir-filename": (doc_with(entry(filename="sub/victim.tar.gz")), ("not a plain file name",)),
        "backslash-filename": (doc_with(entry(filename="..\\victim.tar.gz")),
                               ("not a plain file name",)),
        "hidden-filename": (doc_with(entry(filename=".victim.tar.gz")), ("not a plain file name",)),
        "newline-filename": (doc_with(entry(filename="victim\n.tar.gz")), ("not a plain file name",)),
        "nul-filename": (doc_with(entry(filename="victim\x00.tar.gz")), ("not a plain file name",)),
        "long-filename": (doc_with(entry(filename="a" * 300 + ".tar.gz")), ("not a plain file name",)),
        "script-filename": (doc_with(entry(filename="demo-victim.sh")),
                            ("not an sdist file name",)),
        "other-projects-file": (doc_with(entry(filename="Python-3.13.5.tar.xz")),
                                ("does not start with the project's name",)),
        "file-url": (doc_with(entry(url="file:///etc/passwd")), ("is not http(s)",)),
        "ftp-url": (doc_with(entry(url="ftp://files.example/demo-1.0.tar.gz")), ("is not http(s)",)),
        "data-url": (doc_with(entry(url="data:,hello")), ("is not http(s)",)),
        "hostless-url": (doc_with(entry(url="http:///demo-1.0.tar.gz")), ("is not http(s)",)),
        "no-url": (doc_with(entry(url=_DROP)), ("has no 'url'",)),
        "url-number": (doc_with(entry(url=7)), ("has no 'url'",)),
        "no-filename": (doc_with(entry(filename=_DROP)), ("has no 'filename'",)),
        "entry-string": (doc_with("demo-1.0.tar.gz"), ("entry is a str",)),
        "no-sha256": (doc_with(entry(digests={})), ("no sha256",)),
        "sha256-number": (doc_with(entry(digests={"sha256": 5})), ("no sha256",)),
        "digests-list": (doc_with(entry(digests=[SHA])), ("no sha256",)),
        "sha256-mismatch": (doc_with(entry(digests={"sha256": "0" * 64})), ("does not match",)),
        "document-list": ([doc_with(entry())], ("not a JSON object",)),
        "releases-list": ({"info": {}, "releases": [1]}, ("must be JSON objects",)),
        "info-string": ({"info": "demo", "releases": {}}, ("must be JSON objects",)),
        "not-json": (b"<html>hello</html>", ("did not return JSON",)),
        "deep-json": (b"[" * 15_000, ("did not return JSON",)),
        "huge-index": (b" " * 30_000 + b"{}", ("SourceLimits.max_index_bytes",)),
        "huge-sdist": (doc_with(entry(digests={"sha256": hashlib.sha256(b"x" * 2000).hexdigest()})),
                       ("SourceLimits.max_sdist_bytes",)),
    }


def read_through(case: object, mirror: Path, *, body: bytes = BODY) -> Path:
    """What `recipe pypi` does with an index: project document, sdist choice, download."""
    raw = case if isinstance(case, bytes) else json.dumps(case).encode()

    def fetch(url):
        if url.endswith("/json"):
            return "https://index.example/pypi/demo/json", raw
        return url, body

    project = pypi.fetch_project("demo", fetch=fetch, limits=SMALL)
    _, dist = pypi.select_sdist(project, "1.0")
    return pypi.download(dist, mirror, fetch=fetch, limits=SMALL)


def test_hostile_index_corpus_is_refused_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "tree"
    mirror = root / "mirror"
    mirror.mkdir(parents=True)
    (root / "victim.tar.gz").write_bytes(b"the file an attacker wants to overwrite")
    cases = index_cases(root)
    refused, changed = 0, 0
    for kind, (case, words) in cases.items():
        before = snapshot(tmp_path)
        body = b"x" * 2000 if kind == "huge-sdist" else BODY
        try:
            read_through(case, mirror, body=body)
        except PyPIError as exc:
            refused += 1
            assert "\n" not in exc.message, (kind, exc.message)
            for word in words:
                assert word in exc.message, (kind, exc.message)
            assert "index.example" in exc.message or "index entry" in exc.message \
                or "demo" in exc.message, (kind, exc.message)  # names the document or entry
        changed += snapshot(tmp_path) != before
    with capsys.disabled():
        print(f"\nindex corpus: {len(cases)} kinds tried, {refused} refused, "
              f"{changed} states changed")
    assert (refused, changed) == (len(cases), 0)


def test_a_good_entry_still_downloads_into_the_mirror_only(tmp_path):
    before = snapshot(tmp_path)
    path = read_through(doc_with(entry()), tmp_path / "mirror")
    assert path == tmp_path / "mirror" / "demo-1.0.tar.gz" and path.read_bytes() == BODY
    assert set(snapshot(tmp_path)) - set(before) == {"mirror", "mirror/demo-1.0.tar.gz"}


def test_hostile_project_names_never_reach_a_url_or_a_recipe():
    for name in ("../etc", "a/b", "x\ny", "", "-x"):
        with pytest.raises(PyPIError, match="not a valid project name"):
            pypi.fetch_project(name, fetch=lambda url: pytest.fail(f"fetched {url}"))
    with pytest.raises(PyPIError, match="not a valid project name"):
        pypi.canonical_sdist_url("demo\n  script: evil", "demo-1.0.tar.gz")
    with pytest.raises(PyPIError, match="not a plain file name"):
        pypi.canonical_sdist_url("demo", "demo-1.0.tar.gz\n  script: evil")


# --------------------------------------------------------------------------- sdists

PKG_INFO = "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n{extra}"
PYPROJECT = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'


def make_tar(path: Path, files: dict[str, bytes | str], *, root="demo-1.0", fmt=tarfile.PAX_FORMAT,
             pax: dict | None = None) -> Path:
    with tarfile.open(path, "w:gz", format=fmt, pax_headers=pax or {}) as tar:
        for rel, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(f"{root}/{rel}" if root else rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes | str], *, root="demo-1.0") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, data in files.items():
            archive.writestr(f"{root}/{rel}", data)
    return path


def pkg_info(name="demo", version="1.0", summary="A demo", extra="") -> str:
    return PKG_INFO.format(name=name, version=version, summary=summary, extra=extra)


def good(**kw) -> dict[str, str]:
    return {"PKG-INFO": pkg_info(**kw), "pyproject.toml": PYPROJECT, "demo/__init__.py": ""}


def sdist_cases(d: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    fifo = d / "fifo-1.0.tar.gz"
    os.mkfifo(fifo)
    (d / "dir-1.0.tar.gz").mkdir()
    (d / "junk-1.0.tar.gz").write_bytes(os.urandom(512))
    (d / "empty-1.0.tar.gz").write_bytes(b"")
    many = {f"f{i}.txt": "" for i in range(30)}
    return {
        "name-traversal": (make_tar(d / "a.tar.gz", good(name="../recipes/python-3.13")),
                           ("PKG-INFO Name", "not a valid project name")),
        "name-slash": (make_tar(d / "b.tar.gz", good(name="a/b")), ("not a valid project name",)),
        "name-absolute": (make_tar(d / "c.tar.gz", good(name="/etc")), ("not a valid project name",)),
        "name-empty": (make_tar(d / "d.tar.gz", good(name="")), ("not a valid project name",)),
        "version-shell": (make_tar(d / "e.tar.gz", good(version="1.0; rm -rf ~")),
                          ("not a PEP 440 version",)),
        "version-path": (make_tar(d / "f.tar.gz", good(version="../../x")),
                         ("not a PEP 440 version",)),
        "pax-header-bomb": (make_tar(d / "g.tar.gz", good(), pax={"comment": "x" * 100_000}),
                            ("SourceLimits.max_header_bytes",)),
        "gnu-longname-bomb": (make_tar(d / "h.tar.gz", {**good(), "a" * 10_000: ""},
                                       fmt=tarfile.GNU_FORMAT), ("SourceLimits.max_header_bytes",)),
        "too-many-members": (make_tar(d / "i.tar.gz", {**good(), **many}),
                             ("SourceLimits.max_members",)),
        "zip-too-many-members": (make_zip(d / "i.zip", {**good(), **many}),
                                 ("SourceLimits.max_members",)),
        "too-big-unpacked": (make_tar(d / "j.tar.gz", {**good(), "blob": b"\0" * 200_000}),
                             ("SourceLimits.max_unpacked_bytes",)),
        "zip-pkginfo-bomb": (make_zip(d / "k.zip", {**good(), "PKG-INFO": pkg_info(
            extra="Description: " + "x" * 90_000 + "\n")}), ("PKG-INFO", "max_metadata_bytes")),
        "tar-pkginfo-bomb": (make_tar(d / "l.tar.gz", {**good(), "PKG-INFO": pkg_info(
            extra="Description: " + "x" * 90_000 + "\n")}), ("PKG-INFO", "max_metadata_bytes")),
        "build-system-string": (make_tar(d / "m.tar.gz", {**good(),
                                                          "pyproject.toml": 'build-system = "x"\n'}),
                                ("[build-system] is not a table",)),
        "requires-numbers": (make_tar(d / "n.tar.gz", {**good(), "pyproject.toml":
                                                       "[build-system]\nrequires = [1, 2]\n"}),
                             ("'requires' is not a list of strings",)),
        "backend-number": (make_tar(d / "o.tar.gz", {**good(), "pyproject.toml":
                                                     "[build-system]\nbuild-backend = 3\n"}),
                           ("'build-backend' is not a string",)),
        "deep-toml": (make_tar(d / "p.tar.gz", {**good(), "pyproject.toml":
                                                "a = " + "[" * 5000 + "]" * 5000 + "\n"}),
                      ("nests too deeply",)),
        "no-pkg-info": (make_tar(d / "q.tar.gz", {"pyproject.toml": PYPROJECT}), ("no PKG-INFO",)),
        "fifo": (fifo, ("not a regular file",)),
        "directory": (d / "dir-1.0.tar.gz", ("not a regular file",)),
        "random-bytes": (d / "junk-1.0.tar.gz", ("not a readable sdist archive",)),
        "empty-file": (d / "empty-1.0.tar.gz", ("not a readable sdist archive",)),
    }


def test_hostile_sdist_corpus_is_refused_with_the_rule(tmp_path, capsys):
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    cases = sdist_cases(sdists)
    before = snapshot(tmp_path)
    refused = 0
    for kind, (path, words) in cases.items():
        with pytest.raises(SdistError) as info:
            inspect_sdist(path, limits=SDIST_LIMITS)
        refused += 1
        message = info.value.message
        assert "\n" not in message and path.name in message, (kind, message)
        for word in words:
            assert word in message, (kind, message)
    changed = int(snapshot(tmp_path) != before)
    with capsys.disabled():
        print(f"\nsdist corpus: {len(cases)} kinds tried, {refused} refused, "
              f"{changed} states changed")
    assert (refused, changed) == (len(cases), 0)


def test_metadata_that_reaches_recipe_text_is_one_plain_line(tmp_path):
    files = good(summary="line one\n line two", extra="Home-page: javascript:alert(1)\n"
                 "License: MIT\n  script: evil\nLicense-File: ../../etc/passwd\n")
    files["evil;touch x/__init__.py"] = ""
    files["demo/__init__.py"] = ""
    facts = inspect_sdist(make_tar(tmp_path / "demo-1.0.tar.gz", files))
    assert facts.summary == "line one line two"
    assert "\n" not in facts.license and facts.homepage == ""
    assert facts.license_files == ()
    assert all(m.isidentifier() for m in facts.top_level), facts.top_level


def test_recipe_directory_is_a_conda_name_inside_output_dir(tmp_path):
    out = tmp_path / "out"
    for name in ("../recipes", "a/b", "/abs", ".hidden", "..", "Upper", ""):
        with pytest.raises(RecipeOutputError):
            recipe_dir(out, name)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(RecipeOutputError, match="exists and is not a directory"):
        recipe_dir(a_file, "demo")
    with pytest.raises(RecipeOutputError, match="refused to write a file named"):
        write_files(out / "demo", {"../escape.yaml": "x"})
    assert not out.exists()
    assert recipe_dir(out, "demo") == out / "demo"


# --------------------------------------------------------------------------- the CLI

def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "ftforge.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture
def index_server():
    """A loopback JSON index whose document has an entry without a url."""
    doc = json.dumps(doc_with(entry(url=_DROP))).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pypi"
    server.shutdown()
    server.server_close()


def test_cli_source_errors_are_one_clear_line(tmp_path, index_server):
    env = {"FTFORGE_CACHE": str(tmp_path / "cache"), "FTFORGE_PYPI_URL": index_server}
    bad = make_tar(tmp_path / "bad-1.0.tar.gz", {**good(name="bad"),
                                                 "pyproject.toml": 'build-system = "x"\n'})
    pure = make_tar(tmp_path / "demo-1.0.tar.gz", good())
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    cases = [
        (["recipe", "pypi", "demo==1.0"], "has no 'url'"),
        (["recipe", "pypi", str(bad)], "pyproject.toml [build-system] is not a table"),
        (["recipe", "pypi", str(pure), "--output-dir", str(a_file)],
         "exists and is not a directory"),
        (["recipe", "pypi", "demo", "--map", "foo"], "--map 'foo' is not PYPI=CONDA"),
        (["recipe", "python", "3.13.5", "--output-dir", str(a_file)],
         "cannot write the recipe (Not a directory)"),
    ]
    for args, expected in cases:
        result = cli(*args, env=env)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr, (args, result.stderr)
        assert "--variant" not in result.stderr
    assert a_file.read_text() == ""


def test_bad_recipe_error_names_the_users_file_not_the_staged_copy(tmp_path):
    recipe = tmp_path / "bad"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text("package:\n  name: bad\n  version: '1'\n"
                                        "build:\n  number: ${{ nope(1) }}\n")
    result = cli("build", str(recipe), "--output-dir", str(tmp_path / "out"),
                 env={"FTFORGE_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{recipe / 'recipe.yaml'}: rattler-build cannot render" in result.stderr
    assert "ftforge-stage" not in result.stderr


# --------------------------------------------------------------------------- properties

_hostile_text = st.one_of(st.text(max_size=40), st.sampled_from(
    ["../x.tar.gz", "/etc/passwd", "file:///etc/passwd", "x/../../y.zip", ".x.tar.gz",
     "demo-1.0.tar.gz", "demo-1.0.zip", "ftp://h/x.tar.gz", "https://h/x.tar.gz", "\x00"]))
_json = st.recursive(st.none() | st.booleans() | st.integers() | _hostile_text,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_entry = st.fixed_dictionaries({}, optional={
    "filename": _hostile_text | _json, "url": _hostile_text | _json,
    "packagetype": st.sampled_from(["sdist", "bdist_wheel"]) | _json,
    "digests": st.fixed_dictionaries({"sha256": st.just(SHA) | _json}) | _json,
    "yanked": _json})
_document = st.one_of(_json, st.fixed_dictionaries({
    "info": st.fixed_dictionaries({"name": _hostile_text, "version": _hostile_text}) | _json,
    "releases": st.dictionaries(st.sampled_from(["1.0", "2.0", "x"]),
                                st.lists(_entry, max_size=3) | _json, max_size=2)}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(document=_document)
def test_property_index_documents_give_no_traceback_and_no_escaped_write(tmp_path, document):
    mirror = tmp_path / "mirror"
    before = {p for p in snapshot(tmp_path) if not p.startswith("mirror")}
    try:
        path = read_through(document, mirror)
    except FtforgeError as exc:
        assert "\n" not in exc.message
    else:
        assert path.parent == mirror and re.fullmatch(r"[A-Za-z0-9][\w.+!-]*", path.name)
    assert {p for p in snapshot(tmp_path) if not p.startswith("mirror")} == before


_header_value = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(name=_header_value, version=_header_value, summary=_header_value,
       pyproject=st.sampled_from([PYPROJECT, "", "build-system = 1\n", "[build-system]\n",
                                  "[build-system]\nrequires = 'x'\n", "[tool]\nsetuptools = 1\n",
                                  "[build-system]\nbackend-path = [1]\nbuild-backend = 'x'\n"]),
       member=_header_value, as_zip=st.booleans())
def test_property_sdist_metadata_gives_no_traceback(tmp_path, name, version, summary, pyproject,
                                                     member, as_zip):
    files = {"PKG-INFO": pkg_info(name=name, version=version, summary=summary),
             "pyproject.toml": pyproject, f"{member}/__init__.py": ""}
    path = tmp_path / ("x.zip" if as_zip else "x.tar.gz")
    try:
        (make_zip if as_zip else make_tar)(path, files)
    except (ValueError, UnicodeError, OSError):
        return  # not an archive these libraries can write; nothing to read
    try:
        facts = inspect_sdist(path)
    except SdistError as exc:
        assert "\n" not in exc.message
    else:
        assert re.fullmatch(r"[A-Za-z0-9]([\w.-]*[A-Za-z0-9])?", facts.name)
        assert "\n" not in facts.summary and "\n" not in facts.version
        assert all(part.isidentifier() for m in facts.top_level for part in m.split("."))
    finally:
        path.unlink(missing_ok=True)


def test_a_trickling_server_is_cut_off_by_the_download_time_limit(tmp_path):
    import time as clock

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    clock.sleep(0.2)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/demo-1.0.tar.gz"
        with pytest.raises(PyPIError, match=r"SourceLimits\.download_seconds"):
            pypi._urlopen(url, SourceLimits(download_seconds=1))
    finally:
        server.shutdown()
        server.server_close()
