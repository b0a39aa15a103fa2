"""A channel published again is seen by the client's next solve.

The client (py-rattler's gateway behind ``ftforge create``) keeps a repodata
cache under ``$FTFORGE_CACHE/repodata``. A ``file://`` channel is read from disk
every time; ftforge's own HTTP server (``channel serve``) answers every request in
full, never 304; the nginx configuration marks indexes ``no-cache`` (revalidated
with their ETag on every solve). ``oci://`` channels, whose registry marks the repodata blob as
cacheable for a year, are covered with a real registry in
tests/integration/test_channel_serving.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ftforge.channel.nginx import running_nginx
from ftforge.channel.publish import publish
from ftforge.channel.serve import serving
from ftforge.channel.synthetic import SyntheticPackage, write_package


def _generic(name: str) -> SyntheticPackage:
    return SyntheticPackage(name=name, version="1.0", build="h4616a5c_0", noarch="generic",
                            files={f"share/{name}/README": f"{name}\n".encode()})


def _dry_run(channel: str, spec: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "create", "--dry-run", "--prefix",
         str(cache / "unused"), "--channel", channel, spec],
        check=False, capture_output=True, text=True,
        env={**os.environ, "FTFORGE_CACHE": str(cache)})


@contextmanager
def _served(channel: Path, how: str, workdir: Path):
    if how == "nginx":
        with running_nginx(channel, workdir) as url:
            yield url
    elif how == "serve":
        with serving(channel) as url:
            yield url
    else:
        yield str(channel)


@pytest.mark.parametrize("served", ["directory", "serve", "nginx"])
def test_a_package_published_after_a_solve_is_seen_by_the_next_one(tmp_path, served):
    channel = tmp_path / "ft"
    publish([write_package(_generic("alpha"), tmp_path / "in")], channel)
    cache = tmp_path / "cache"

    def solve(url: str, spec: str) -> subprocess.CompletedProcess:
        return _dry_run(url, spec, cache)

    with _served(channel, served, tmp_path / "server") as url:
        before = solve(url, "beta")
        assert before.returncode != 0 and "beta" in before.stderr
        assert "Traceback" not in before.stderr
        assert solve(url, "alpha").returncode == 0
        if served != "directory":  # the first solves left the channel's index in the cache
            assert list((cache / "repodata").glob("*.shards-cache-v1"))
        publish([write_package(_generic("beta"), tmp_path / "in")], channel)
        after = solve(url, "beta")
    assert after.returncode == 0, after.stderr
    assert "beta" in after.stdout and "1.0" in after.stdout



def test_an_unreachable_channel_is_one_line_naming_it(tmp_path):
    """rattler's GatewayError is a typed error: no traceback, the channel named."""
    from ftforge.loopback import free_port

    url = f"http://127.0.0.1:{free_port()}/ft"
    result = _dry_run(url, "alpha", tmp_path / "cache")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: cannot read the repodata of {url}: ")
    assert "hint: check the channel URL" in result.stderr


def test_specs_are_read_as_conda_reads_them(tmp_path):
    """`NAME VERSION BUILD` with a bare version is conda's exact match (rattler's solver,
    parsing strictly, refused it with a traceback); a spec that does not parse is one
    line naming it."""
    channel = tmp_path / "ft"
    publish([write_package(_generic("alpha"), tmp_path / "in")], channel)
    build = next((channel / "noarch").glob("alpha-1.0-*.conda")).name
    build = build.removeprefix("alpha-1.0-").removesuffix(".conda")
    for spec in (f"alpha 1.0 {build}", f"alpha=1.0={build}", "alpha 1.*", "alpha >=1"):
        result = _dry_run(str(channel), spec, tmp_path / "cache")
        assert result.returncode == 0, (spec, result.stderr)
        assert "alpha" in result.stdout and build in result.stdout
    assert _dry_run(str(channel), "alpha 2.0", tmp_path / "cache").returncode == 1
    bad = _dry_run(str(channel), "alpha >=>1", tmp_path / "cache")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "error: 'alpha >=>1' is not a match spec: unable to parse version spec" in bad.stderr
    # conda enforces [fn=...] and [subdir=...]; rattler's solver would ignore them
    for spec in (f"alpha[fn=alpha-1.0-{build}.conda]", "alpha[subdir=linux-64]"):
        refused = _dry_run(str(channel), spec, tmp_path / "cache")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "the solver here does not enforce" in refused.stderr


def test_an_interrupted_create_leaves_no_half_environment(tmp_path, monkeypatch):
    """The install fails (or is interrupted) midway: the prefix this command made is
    removed, so the retry is not refused as "not empty"; an empty directory that was
    given stays, emptied."""
    from ftforge import environments

    channel = tmp_path / "ft"
    publish([write_package(_generic("alpha"), tmp_path / "in")], channel)

    async def half_install(records, prefix, installed=None):
        (prefix / "conda-meta").mkdir(parents=True)
        (prefix / "conda-meta" / "alpha.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(environments, "_install", half_install)
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        environments.create(fresh, [str(channel)], ["alpha"], with_pip=False)
    assert not fresh.exists()
    given = tmp_path / "given"
    given.mkdir()
    with pytest.raises(KeyboardInterrupt):
        environments.create(given, [str(channel)], ["alpha"], with_pip=False)
    assert given.is_dir() and not any(given.iterdir())
    monkeypatch.undo()
    environments.create(fresh, [str(channel)], ["alpha"], with_pip=False)
    assert (fresh / "conda-meta").is_dir()
