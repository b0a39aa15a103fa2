"""The build driver on tiny real recipes: caching by recipe hash, failure reporting."""

from __future__ import annotations

import pytest

from ftforge.build.driver import BuildRequest, build
from ftforge.errors import BuildFailedError

from .conftest import TINY
from .conftest import tiny_recipe as _recipe

pytestmark = pytest.mark.integration

def test_second_build_comes_from_the_cache(tmp_path, isolated_cache):
    recipe = _recipe(tmp_path / "tiny", "one")
    first = build(BuildRequest(recipe, tmp_path / "out1", test="skip"))
    second = build(BuildRequest(recipe, tmp_path / "out2", test="skip"))
    assert not first.cached and second.cached
    assert first.cache_key == second.cache_key
    assert sorted(p.name for p in second.packages) == [
        "ftforge-tiny-1.0-plain_0.conda", "ftforge-tiny-1.0-spicy_0.conda"]
    assert (tmp_path / "out2" / "noarch" / "repodata.json").exists() or \
        (tmp_path / "out2" / "linux-64" / "repodata.json").exists()
    keys = first.cache_key.split(",")
    assert len(keys) == 2  # one cache entry per variant combination
    assert all((isolated_cache / "builds" / k / "manifest.json").is_file() for k in keys)
    pinned = build(BuildRequest(recipe, tmp_path / "out3", overrides=(("flavour", "spicy"),),
                                test="skip"))
    assert pinned.cached and pinned.cache_key in keys


def test_recipe_change_misses_the_cache_and_variant_pins_one_build(tmp_path, isolated_cache):
    recipe = _recipe(tmp_path / "tiny", "one")
    first = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                               test="skip"))
    assert [p.name for p in first.packages] == ["ftforge-tiny-1.0-spicy_0.conda"]
    _recipe(tmp_path / "tiny", "two")
    second = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                                test="skip"))
    assert not second.cached and second.cache_key != first.cache_key


def test_failing_script_is_reported_with_its_output(tmp_path, isolated_cache):
    recipe = tmp_path / "broken"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        TINY.format(marker="x").replace("    - mkdir -p $PREFIX/share\n",
                                        "    - echo no libfrobnicate found\n"
                                        "    - exit 3\n").replace("${{ flavour }}", "plain"))
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", test="skip"))
    assert "ftforge-tiny" in str(info.value)
    assert "no libfrobnicate found" in str(info.value)
    assert info.value.hint and ".failed/build.log" in info.value.hint
    assert not list((tmp_path / "out").glob("*/*.conda"))


def test_missing_library_header_is_one_line_with_what_to_do(tmp_path, isolated_cache):
    recipe = tmp_path / "needs-lib"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text("""schema_version: 1
package:
  name: needs-frobnicate
  version: "1.0"
build:
  script:
    - printf '#include <frobnicate/frob.h>\\nint main(void){return 0;}\\n' > t.c
    - $CC t.c -o t
requirements:
  build:
    - ${{ compiler('c') }}
""")
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", test="skip"))
    assert str(info.value.message).count("\n") == 0
    assert "the C header frobnicate/frob.h is not installed" in info.value.message
    assert "apt-file search frobnicate/frob.h" in info.value.hint


def _sigterm_a_build(recipe, cache, out, ready, *extra: str, timeout: float = 60):
    """Start `ftforge build RECIPE` (its own process), wait until ``ready()`` says the
    build script runs, SIGTERM ftforge alone; (returncode, stdout, stderr, seconds the
    exit took)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ftforge.cli", "build", str(recipe),
                             "--output-dir", str(out), "--test", "skip", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FTFORGE_CACHE": str(cache)})
    try:
        deadline = time.monotonic() + 300
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the build script never started"
            time.sleep(0.2)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out_text, err_text = proc.communicate(timeout=timeout)
        return proc.returncode, out_text, err_text, time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_ends_the_build_and_every_process_it_started(tmp_path, isolated_cache):
    """`kill PID` of a running `ftforge build` (the process alone, not its group, as a
    supervisor or a CI timeout may send it): ftforge exits 143 within seconds, the build
    script's processes are gone, and the cache keeps the failed build aside, not a
    `.partial` one. Before, the SIGTERM waited for the build to return (rattler-build
    holds the GIL) and a SIGKILL left make running."""
    import os
    import signal
    import time

    pids = tmp_path / "pids"
    recipe = tmp_path / "slow"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        TINY.format(marker="x").replace("    - mkdir -p $PREFIX/share\n",
                                        f"    - sleep 600 & echo $! > {pids}; wait\n")
        .replace("${{ flavour }}", "plain"))
    code, out, err, took = _sigterm_a_build(
        recipe, isolated_cache, tmp_path / "out",
        lambda: pids.exists() and pids.read_text().strip() != "")
    sleeper = int(pids.read_text())
    assert code == 143, (out, err)
    assert err.strip().splitlines()[-1] == "terminated", err
    assert "Traceback" not in err
    assert took < 30, took
    for _ in range(100):
        try:
            os.kill(sleeper, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(sleeper, signal.SIGKILL)
        raise AssertionError(f"the build script's sleep {sleeper} was still running")
    builds = isolated_cache / "builds"
    assert not list(builds.glob("*.partial")), list(builds.iterdir())
    assert list(builds.glob("*.failed"))


def _my_children() -> set[str]:
    import os

    mine = str(os.getpid())
    children = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == mine:
            children.add(pid)
    return children


def test_a_build_in_its_child_process_reports_as_before(tmp_path, isolated_cache):
    """The variant is built by a child process: its log lines reach build.log and the
    timeline, a failure still names the script's output, and no child is left (other
    tests in this process may keep children of their own: an audit pool's workers)."""
    before = _my_children()
    recipe = _recipe(tmp_path / "tiny", "childish")
    outcome = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                                 test="skip"))
    log = outcome.log_file.read_text()
    assert "childish" in log  # the script's own lines, relayed from the child
    assert (outcome.log_file.parent / "build.timeline.tsv").read_text().count("\tlog\t") > 5
    assert _my_children() - before == set()


def test_outputs_that_share_their_variant_values_each_build_once(tmp_path, isolated_cache):
    """Two outputs of one recipe with the same variant values (as python_abi and
    python-gil): the child process picks each by its output name too."""
    recipe = tmp_path / "two"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        "schema_version: 1\nrecipe:\n  name: two\n  version: '1.0'\noutputs:\n"
        + "".join(f"  - package:\n      name: ftforge-{n}\n      version: '1.0'\n"
                  f"    build:\n      noarch: generic\n      script:\n"
                  f"        - mkdir -p $PREFIX/share && echo {n} > $PREFIX/share/{n}.txt\n"
                  for n in ("first", "second")))
    outcome = build(BuildRequest(recipe, tmp_path / "out", test="skip"))
    assert sorted(p.name.split("-1.0-")[0] for p in outcome.packages) == [
        "ftforge-first", "ftforge-second"]


def _both_flavours_recipe(directory, script: str):
    """TINY (flavours plain and spicy) with ``script`` as its build script's first line."""
    directory.mkdir(parents=True)
    (directory / "recipe.yaml").write_text(
        TINY.format(marker="x").replace("    - mkdir -p $PREFIX/share\n",
                                        f"    - {script}\n    - mkdir -p $PREFIX/share\n"))
    (directory / "variants.yaml").write_text("flavour: [plain, spicy]\n")
    return directory


def _wait_for_both(marks) -> str:
    """Script text: mark this flavour started, then wait (60 s at most) for both marks."""
    both = f"[ -e {marks}/plain ] && [ -e {marks}/spicy ]"
    return (f"touch {marks}/${{{{ flavour }}}}; for i in $(seq 600); do {both} && break; "
            f"sleep 0.1; done; {both}")


def test_variants_build_side_by_side(tmp_path, isolated_cache):
    """A recipe's two variants build at once (each variant's script waits for the other's
    to start: one after the other, the first would give up after a minute)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    recipe = _both_flavours_recipe(tmp_path / "pair", _wait_for_both(marks))
    outcome = build(BuildRequest(recipe, tmp_path / "out", test="skip", variant_jobs=2))
    assert sorted(p.name for p in outcome.packages) == [
        "ftforge-tiny-1.0-plain_0.conda", "ftforge-tiny-1.0-spicy_0.conda"]
    assert not outcome.cached
    assert build(BuildRequest(recipe, tmp_path / "out2", test="skip")).cached


def test_a_failing_variant_lets_the_other_finish_and_keeps_it(tmp_path, isolated_cache):
    """spicy fails at once; plain, building beside it, finishes and is cached; the error
    names spicy and its output."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = (f"touch {marks}/${{{{ flavour }}}}; "
              f"if [ ${{{{ flavour }}}} = spicy ]; then echo spicy has no chilli; exit 3; fi; "
              f"{_wait_for_both(marks)}")
    recipe = _both_flavours_recipe(tmp_path / "pair", script)
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", test="skip", variant_jobs=2))
    assert "flavour=spicy" in info.value.message
    assert "spicy has no chilli" in info.value.message
    plain = build(BuildRequest(recipe, tmp_path / "out2", overrides=(("flavour", "plain"),),
                               test="skip"))
    assert plain.cached
    assert [p.name for p in plain.packages] == ["ftforge-tiny-1.0-plain_0.conda"]
    builds = isolated_cache / "builds"
    assert len(list(builds.glob("*.failed"))) == 1 and not list(builds.glob("*.partial"))


def test_sigterm_ends_every_variant_building_at_once(tmp_path, isolated_cache):
    """Both variants building side by side (each in a thread waiting on its child): a
    SIGTERM to ftforge ends both children's process groups; exit 143, two `.failed`."""
    import os
    import signal
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    recipe = _both_flavours_recipe(
        tmp_path / "slow", f"sleep 600 & echo $! > {pids}/${{{{ flavour }}}}; wait")
    code, out, err, took = _sigterm_a_build(
        recipe, isolated_cache, tmp_path / "out",
        lambda: len([p for p in pids.iterdir() if p.read_text().strip()]) == 2,
        "--variant-jobs", "2")
    sleepers = [int(p.read_text()) for p in pids.iterdir()]
    assert code == 143, (out, err)
    assert err.strip().splitlines()[-1] == "terminated", err
    assert "Traceback" not in err
    assert took < 30, took
    time.sleep(1)
    alive = []
    for pid in sleepers:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == [], f"build scripts' sleeps still running: {alive}"
    builds = isolated_cache / "builds"
    assert not list(builds.glob("*.partial")), list(builds.iterdir())
    assert len(list(builds.glob("*.failed"))) == 2


def test_a_build_gets_default_signals_when_ftforge_was_started_with_sigint_ignored(
        tmp_path, isolated_cache):
    """`nohup ftforge build ... &` from a script (or cron) starts ftforge with SIGINT
    ignored; the build script must not inherit that (CPython's PGO training task has a
    test that sends itself SIGINT: both interpreter builds failed this way)."""
    import os
    import signal
    import subprocess
    import sys

    recipe = tmp_path / "signals"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        TINY.format(marker="x").replace(
            "    - mkdir -p $PREFIX/share\n",
            "    - grep -E '^Sig(Ign|Blk)' /proc/self/status\n"
            "    - ign=$(awk '/^SigIgn/ {print $2}' /proc/self/status); "
            "test $(( 16#$ign & 7 )) -eq 0\n"  # SIGHUP, SIGINT, SIGQUIT not ignored
            "    - mkdir -p $PREFIX/share\n").replace("${{ flavour }}", "plain"))

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "build", str(recipe),
                             "--output-dir", str(tmp_path / "out"), "--test", "skip"],
                            capture_output=True, text=True, preexec_fn=ignore_sigint,
                            env={**os.environ, "FTFORGE_CACHE": str(isolated_cache)},
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list((tmp_path / "out").glob("*/ftforge-tiny-1.0-plain_0.conda"))


def test_an_interrupted_build_does_not_wait_for_a_process_that_left_its_group(
        tmp_path, isolated_cache):
    """Each of two variants building at once starts a daemon of its own (setsid: out of
    the build's process group, which ftforge ends): on SIGTERM ftforge must not wait for
    them -- they do not inherit the pipe a variant's thread reads the build's events from."""
    import os
    import signal

    marks = tmp_path / "marks"
    marks.mkdir()
    recipe = _both_flavours_recipe(
        tmp_path / "daemon",
        f"setsid sh -c 'echo $$ > {marks}/${{{{ flavour }}}}.pid; exec sleep 90' "
        f"< /dev/null > /dev/null 2>&1 & sleep 1; touch {marks}/${{{{ flavour }}}}; sleep 600")
    try:
        code, out, err, took = _sigterm_a_build(
            recipe, isolated_cache, tmp_path / "out",
            lambda: all((marks / f).exists() for f in ("plain", "spicy")),
            "--variant-jobs", "2", timeout=85)
    finally:
        for pid in marks.glob("*.pid"):
            try:
                os.kill(int(pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    assert code == 143, (out, err)
    assert took < 45, f"ftforge waited {took:.0f} s for the daemons"
