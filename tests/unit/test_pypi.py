"""PyPI client: relative and absolute file URLs, bad names/versions, wheel-only, sha256."""

import hashlib
import json
import urllib.error

import pytest

from ftforge import pypi
from ftforge.pypi import PyPIError

SDIST = b"pretend sdist bytes"
SHA = hashlib.sha256(SDIST).hexdigest()


def project_doc(url_style="relative", files=None):
    url = ("../../packages/ab/cd/demo-1.0.tar.gz" if url_style == "relative"
           else "https://files.example/packages/ab/cd/demo-1.0.tar.gz")
    files = files if files is not None else [
        {"filename": "demo-1.0.tar.gz", "url": url, "packagetype": "sdist",
         "digests": {"sha256": SHA}},
        {"filename": "demo-1.0-py3-none-any.whl", "url": url.replace("tar.gz", "whl"),
         "packagetype": "bdist_wheel", "digests": {"sha256": "0" * 64}},
    ]
    return {"info": {"name": "demo", "version": "1.0"},
            "releases": {"0.9": [], "1.0": files, "2.0rc1": []}}


def fake_fetch(doc, *, body=SDIST, seen=None):
    def fetch(url):
        if seen is not None:
            seen.append(url)
        if url.endswith("/json"):
            if doc is None:
                raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
            return "https://index.example/pypi/demo/json", json.dumps(doc).encode()
        return url, body
    return fetch


@pytest.mark.parametrize("style,expected", [
    ("relative", "https://index.example/packages/ab/cd/demo-1.0.tar.gz"),
    ("absolute", "https://files.example/packages/ab/cd/demo-1.0.tar.gz"),
])
def test_file_urls_resolve_against_the_response(style, expected):
    project = pypi.fetch_project("Demo", fetch=fake_fetch(project_doc(style)))
    version, sdist = pypi.select_sdist(project, None)
    assert version == "1.0" and sdist.url == expected and sdist.sha256 == SHA


def test_project_name_is_normalised_in_the_request():
    seen = []
    pypi.fetch_project("Demo_Pkg", fetch=fake_fetch(project_doc(), seen=seen))
    assert seen[0].endswith("/demo-pkg/json")


def test_unknown_project():
    with pytest.raises(PyPIError, match="is not a project on PyPI"):
        pypi.fetch_project("nope", fetch=fake_fetch(None))


def test_unknown_version_lists_recent_ones():
    project = pypi.fetch_project("demo", fetch=fake_fetch(project_doc()))
    with pytest.raises(PyPIError, match="no release 3.0") as info:
        pypi.select_sdist(project, "3.0")
    assert "1.0" in info.value.hint


def test_wheel_only_release_is_refused():
    doc = project_doc(files=[{"filename": "demo-1.0-py3-none-any.whl", "url": "x.whl",
                              "packagetype": "bdist_wheel", "digests": {"sha256": "0" * 64}}])
    project = pypi.fetch_project("demo", fetch=fake_fetch(doc))
    with pytest.raises(PyPIError, match="no sdist on PyPI \\(only bdist_wheel\\)"):
        pypi.select_sdist(project, "1.0")


def test_download_verifies_sha256_and_keeps_nothing_on_mismatch(tmp_path):
    project = pypi.fetch_project("demo", fetch=fake_fetch(project_doc()))
    _, sdist = pypi.select_sdist(project, "1.0")
    with pytest.raises(PyPIError, match="does not match PyPI's"):
        pypi.download(sdist, tmp_path, fetch=fake_fetch(project_doc(), body=b"tampered"))
    assert list(tmp_path.iterdir()) == []
    path = pypi.download(sdist, tmp_path, fetch=fake_fetch(project_doc()))
    assert path.read_bytes() == SDIST


def test_canonical_url_is_host_independent_source_form():
    assert pypi.canonical_sdist_url("MarkupSafe", "markupsafe-3.0.2.tar.gz") == (
        "https://pypi.org/packages/source/m/markupsafe/markupsafe-3.0.2.tar.gz")
