"""Publishing under stress: immutability, ownership, parallel publishers, crashes."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ftforge.channel.index import read_repodata
from ftforge.channel.owners import OwnershipRefused, load_owners
from ftforge.channel.publish import publish, read_log, recover, remove
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.errors import ChannelError


def noarch(name: str, version: str = "1.0", payload: bytes = b"") -> SyntheticPackage:
    return SyntheticPackage(
        name=name, version=version, build="pyh4616a5c_0", noarch="python",
        depends=["python >=3.10"],
        files={f"site-packages/{name.replace('-', '_')}/__init__.py":
               payload or f"# {name} {version}\n".encode()})


def indexed(channel: Path) -> dict[str, str]:
    """file name -> sha256, from every subdir's repodata.json (which must parse)."""
    out = {}
    for sub in ("noarch", "linux-64"):
        path = channel / sub / "repodata.json"
        if not path.exists():
            continue
        data = read_repodata(path)
        assert data is not None, f"{path} is not whole JSON"
        for key in ("packages", "packages.conda"):
            for fn, rec in data.get(key, {}).items():
                out[fn] = rec["sha256"]
    return out


def ftforge(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftforge.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_immutability(tmp_path):
    channel = tmp_path / "ch"
    first = write_package(noarch("alpha"), tmp_path / "a")
    publish([first], channel)
    same = publish([first], channel)
    assert same.added == [] and [p.name for p in same.unchanged] == [first.name]
    other = write_package(noarch("alpha", payload=b"# different\n"), tmp_path / "b")
    assert other.name == first.name
    before = (channel / "noarch" / first.name).read_bytes()
    with pytest.raises(ChannelError, match="already in .* with different content") as err:
        publish([other], channel)
    assert "bump the build number" in err.value.hint
    assert (channel / "noarch" / first.name).read_bytes() == before
    assert indexed(channel)[first.name] == hashlib.sha256(before).hexdigest()
    print("\nimmutability: 3 publishes checked (new, same content no-op, other content refused)")


def test_ownership(tmp_path):
    channel = tmp_path / "ch"
    first = publish([write_package(noarch("alpha"), tmp_path / "1")], channel,
                    recipe="alpha-feedstock")
    assert load_owners(channel) == {"alpha": "alpha-feedstock"}
    token = first.tokens["alpha-feedstock"]
    assert len(token) >= 40
    stored = (channel / ".ftforge" / "recipe-tokens.json").read_text()
    assert token not in stored, "only the token's hash is kept"
    newer = write_package(noarch("alpha", "2.0"), tmp_path / "2")
    checked = 0
    for recipe, given in (("beta-feedstock", None), (None, None), ("alpha-feedstock", None),
                          ("alpha-feedstock", "a-guess")):
        with pytest.raises(OwnershipRefused, match="alpha belongs to recipe 'alpha-feedstock'"):
            publish([newer], channel, recipe=recipe, token=given)
        assert newer.name not in indexed(channel)
        checked += 1
    again = publish([newer], channel, recipe="alpha-feedstock", token=token)
    assert newer.name in indexed(channel) and again.tokens == {}
    # a recipe publishing two names, one of them taken, publishes neither
    both = [write_package(noarch("gamma"), tmp_path / "3"),
            write_package(noarch("alpha", "3.0"), tmp_path / "3")]
    with pytest.raises(OwnershipRefused):
        publish(both, channel, recipe="gamma-feedstock")
    assert not {p.name for p in both} & set(indexed(channel))
    assert "gamma" not in load_owners(channel)
    # deleting owners.yaml does not reset the claims
    (channel / "owners.yaml").unlink()
    with pytest.raises(ChannelError, match="owners.yaml: missing, but this channel has"):
        publish([write_package(noarch("alpha", "4.0"), tmp_path / "4")], channel,
                recipe="beta-feedstock")
    print(f"\nownership: {checked + 3} publishes checked")


def test_remove_keeps_the_file_and_records_who_and_why(tmp_path):
    channel = tmp_path / "ch"
    pkgs = [write_package(noarch(n), tmp_path / "p") for n in ("alpha", "beta")]
    tokens = publish(pkgs, channel).tokens  # no --recipe: each name is its own recipe
    assert set(tokens) == {"alpha", "beta"}
    with pytest.raises(OwnershipRefused, match="removing alpha needs recipe 'alpha''s token"):
        remove([pkgs[0].name], channel, reason="broken", recipe="alpha", token="guess")
    with pytest.raises(OwnershipRefused, match="alpha belongs to recipe 'alpha'; give --recipe"):
        remove([pkgs[0].name], channel, reason="broken")
    result = remove([pkgs[0].name], channel, reason="broken metadata", by="maintainer-x",
                    recipe="alpha", token=tokens["alpha"])
    assert set(indexed(channel)) == {pkgs[1].name}
    assert not (channel / "noarch" / pkgs[0].name).exists()
    assert result.kept_at[0].read_bytes() == pkgs[0].read_bytes()
    record = read_log(channel)[-1]
    assert record["action"] == "remove" and record["by"] == "maintainer-x"
    assert record["reason"] == "broken metadata" and record["file"] == f"noarch/{pkgs[0].name}"
    with pytest.raises(ChannelError, match="is not published") as again:
        remove([pkgs[0].name], channel, reason="again")
    assert "channel list" not in again.value.hint and "repodata.json" in again.value.hint
    # the removed file name stays burned: other content under that name never publishes
    other = write_package(noarch("alpha", payload=b"# other\n"), tmp_path / "other")
    assert other.name == pkgs[0].name
    with pytest.raises(ChannelError, match="was published .* and removed"):
        publish([other], channel, recipe="alpha", token=tokens["alpha"])
    with pytest.raises(ChannelError, match="was published .* and removed"):
        publish([pkgs[0]], channel, recipe="alpha", token=tokens["alpha"])
    assert set(indexed(channel)) == {pkgs[1].name}


def test_parallel_publishers_lose_nothing(tmp_path):
    channel = tmp_path / "ch"
    publish([write_package(noarch("seed"), tmp_path / "seed")], channel)
    batches = []
    for b in range(6):
        batches.append([write_package(noarch(f"pkg{b}-{i}"), tmp_path / f"b{b}")
                        for i in range(5)])

    def run(batch):
        proc = ftforge("channel", "publish", *map(str, batch), "--channel", str(channel))
        out, err = proc.communicate(timeout=300)
        return proc.returncode, err

    with ThreadPoolExecutor(len(batches)) as pool:
        results = list(pool.map(run, batches))
    assert all(code == 0 for code, _ in results), results
    names = set(indexed(channel))
    expected = {p.name for batch in batches for p in batch} | {"seed-1.0-pyh4616a5c_0.conda"}
    assert names == expected
    publishes = [r for r in read_log(channel) if r["action"] == "publish"]
    assert len(publishes) == len(expected)
    print(f"\nparallel: {len(batches)} publishers, {len(expected)} packages, all indexed")


def test_crash_at_random_points_keeps_the_channel_serving(tmp_path):
    """SIGKILL a publisher at random points, 30+ times: the index is always whole,
    lists only intact files, never loses a package; the next publish recovers."""
    channel = tmp_path / "ch"
    base = [write_package(noarch(f"base{i}"), tmp_path / "base") for i in range(20)]
    publish(base, channel)
    originals = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base}

    # how long one publish takes here, to spread the kills over all of it
    probe = [write_package(noarch("probe"), tmp_path / "probe")]
    start = time.monotonic()
    proc = ftforge("channel", "publish", *map(str, probe), "--channel", str(channel))
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    duration = time.monotonic() - start
    originals.update({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in probe})

    rng = random.Random(703)
    kills = checks = 0
    rounds = 0
    # Rounds go on until 30 publishes were killed while running (a kill that lands after
    # a publish finished does not count); at most 120 rounds. The probe's duration is a
    # guess on a loaded machine: a publish that finished before its kill moves the next
    # kills earlier, so they stay spread over a publish as it runs now.
    for round_ in range(120):
        if kills >= 30:
            break
        rounds += 1
        batch = [write_package(noarch(f"r{round_}-{i}"), tmp_path / f"r{round_}")
                 for i in range(3)]
        originals.update({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in batch})
        before = indexed(channel)
        proc = ftforge("channel", "publish", *map(str, batch), "--channel", str(channel))
        time.sleep(rng.uniform(0.05, 1.1) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        else:
            duration *= 0.85
        proc.wait()
        now = indexed(channel)
        assert set(before) <= set(now), "a published package vanished from the index"
        for fn, sha in now.items():
            served = channel / "noarch" / fn
            assert served.is_file(), f"the index lists {fn} but the file is missing"
            assert hashlib.sha256(served.read_bytes()).hexdigest() == sha == originals[fn]
            checks += 1
    assert kills >= 30, f"only {kills} publishes were still running when killed"

    recover(channel)
    final = indexed(channel)
    on_disk = {p.name for p in (channel / "noarch").glob("*.conda")}
    assert set(final) == on_disk, "recovery indexes every package a crashed publish moved in"
    assert set(originals) >= on_disk >= {p.name for p in base + probe}
    leftovers = list((channel / ".ftforge" / "staging").iterdir())
    assert leftovers == []
    json.loads((channel / "noarch" / "repodata.json").read_text())
    print(f"\ncrash test: {kills} kills in {rounds} rounds, {checks} index entries verified, "
          f"{len(on_disk)} packages served after recovery")
