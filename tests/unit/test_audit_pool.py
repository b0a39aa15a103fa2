"""The audit spread over worker processes: the same reports, in the same order, as
auditing each package here; a refusal still names its package; a dead worker
refuses the publish with a one-line error and publishes nothing; a caller's
script without a main guard is not run again by the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftforge.channel import audit_pool
from ftforge.channel.audit import PackageRefused, audit_package
from ftforge.channel.audit_pool import audit_each
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.errors import ChannelError

POOL_FROM = 32
COUNT = POOL_FROM + 8


@pytest.fixture
def two_cpus(monkeypatch):
    """The pool's decision sees two CPUs, whatever this machine has, and starts at
    POOL_FROM packages (its own threshold is 1,000: too many to write here)."""
    monkeypatch.setattr(audit_pool, "_cpus", lambda: 2)
    monkeypatch.setattr(audit_pool, "POOL_MIN_PACKAGES", POOL_FROM)


@pytest.fixture
def worker_pids(monkeypatch) -> list[int]:
    """The process ids of the audit workers started while the test runs."""
    pids: list[int] = []

    class Recorded(audit_pool._Worker):
        def __init__(self) -> None:
            super().__init__()
            pids.append(self.process.pid)

    monkeypatch.setattr(audit_pool, "_Worker", Recorded)
    return pids


def _packages(tmp_path: Path, bad: set[int] = frozenset()) -> list[Path]:
    out = tmp_path / "in"
    out.mkdir()
    paths = []
    for i in range(COUNT):
        pkg = SyntheticPackage(name=f"pool-{i}", version="1.0", build="pyhd8ed1ab_0",
                               subdir="noarch", noarch="python",
                               files={f"site-packages/pool_{i}/__init__.py": b"x = 1\n"})
        path = write_package(pkg, out)
        if i in bad:
            path.write_bytes(path.read_bytes()[:200])  # truncated: archive.unreadable
        paths.append(path)
    return paths



def _interrupting_script(tmp_path: Path, send: str) -> str:
    """The head of a script that audits tmp/in in a pool of 2 workers and runs ``send``
    (a signal to itself) half-way through handing out batches; it defines children()."""
    return textwrap.dedent(f"""
        import os, signal, time
        from pathlib import Path
        from ftforge.channel import audit_pool
        audit_pool._cpus = lambda: 2
        audit_pool.POOL_MIN_PACKAGES = {POOL_FROM}
        paths = sorted(Path({str(tmp_path / "in")!r}).glob("*.conda"))

        def ready(path):
            if path == paths[len(paths) // 2]:
                {send}
                time.sleep(5)  # the signal lands here
            return path

        def children():
            mine, out = str(os.getpid()), []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat = open(f"/proc/{{pid}}/stat").read()
                except OSError:
                    continue
                if stat.rsplit(")", 1)[1].split()[1] == mine:
                    out.append(pid)
            return out
    """)

def test_the_pool_gives_the_reports_auditing_here_gives_in_order(tmp_path, two_cpus,
                                                                 worker_pids):
    paths = _packages(tmp_path, bad={3, COUNT - 1})
    assert audit_pool._pool_workers(paths, None) == 2
    seen = []

    def ready(path: Path) -> Path:
        seen.append(path)
        return path

    pooled = list(audit_each(paths, ready=ready))
    here = [audit_package(p) for p in paths]
    assert seen == paths
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids, "no worker ran the audit"
    assert [r.path for r in pooled] == paths
    assert [r.findings for r in pooled] == [r.findings for r in here]
    assert [r.record for r in pooled] == [r.record for r in here]
    assert [r.ok for r in pooled].count(False) == 2
    assert pooled[3].findings[0].rule == "archive.unreadable"


def test_few_small_packages_are_audited_here(tmp_path, two_cpus):
    paths = _packages(tmp_path)[: POOL_FROM - 1]
    assert audit_pool._pool_workers(paths, None) == 0
    # enough bytes make the pool worth starting even for a few packages
    big = tmp_path / "big.conda"
    with open(big, "wb") as handle:
        handle.truncate(audit_pool.POOL_MIN_BYTES)  # sparse: no disk used
    assert audit_pool._pool_workers(paths, [big, *paths[1:]]) == 2


def test_a_pooled_publish_refuses_naming_the_bad_package(tmp_path, two_cpus):
    paths = _packages(tmp_path, bad={17})
    channel = tmp_path / "channel"
    with pytest.raises(PackageRefused) as refused:
        publish(paths, channel)
    assert "pool-17-1.0-pyhd8ed1ab_0" in str(refused.value)
    assert "archive.unreadable" in str(refused.value)
    assert not list(channel.glob("*/*.conda"))
    # the good ones publish, audited in the pool
    del paths[17]
    result = publish(paths, channel)
    assert len(result.added) == COUNT - 1


def test_a_dead_worker_refuses_the_publish(tmp_path, two_cpus, worker_pids):
    paths = _packages(tmp_path)
    channel = tmp_path / "channel"

    def ready(path: Path) -> Path:
        if path == paths[-1]:  # every worker is killed before the last package is handed out
            for pid in worker_pids:
                os.kill(pid, signal.SIGKILL)
        return path

    with pytest.raises(ChannelError) as died:
        list(audit_each(paths, ready=ready))
    assert "a worker process died" in died.value.message
    assert "ftforge channel audit" in (died.value.hint or "")
    assert not channel.exists()


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path):
    """multiprocessing's spawn would run this script again in each worker (a second
    publish, waiting forever on the lock the first holds); the workers run nothing
    of the caller's. The script also prints: the workers' answers are not mixed
    with anything on stdout."""
    paths = _packages(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from ftforge.channel import audit_pool
        from ftforge.channel.publish import publish
        audit_pool._cpus = lambda: 2
        audit_pool.POOL_MIN_PACKAGES = {POOL_FROM}
        print("script ran")
        paths = sorted(Path({str(tmp_path / "in")!r}).glob("*.conda"))
        result = publish(paths, Path({str(tmp_path / "channel")!r}))
        print("published", len(result.added))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["script ran", f"published {len(paths)}"]


def test_ctrl_c_during_a_pooled_audit_ends_every_worker(tmp_path):
    """Ctrl-C (SIGINT to the whole process group) while batches are being handed
    out: the caller sees KeyboardInterrupt promptly and no worker is left."""
    _packages(tmp_path)
    script = tmp_path / "interrupted.py"
    script.write_text(_interrupting_script(tmp_path, "os.killpg(0, signal.SIGINT)")
                      + textwrap.dedent("""
        try:
            list(audit_pool.audit_each(paths, ready=ready))
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted, children left:", len(children()))
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, start_new_session=True)
    assert run.stdout.strip() == "interrupted, children left: 0", run.stderr


def test_ctrl_c_exits_130(tmp_path):
    """The CLI says "aborted" and exits 130 on Ctrl-C (typer hands main() the code
    instead of raising it; it used to exit 0)."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, threading, time
        from ftforge import cli
        from ftforge.channel import audit

        def slow(paths, limits=None):
            time.sleep(30)

        audit.audit_packages = slow
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        sys.argv = ["ftforge", "channel", "audit", "x.conda"]
        cli.main()
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 130, run
    assert "aborted" in run.stderr


def test_sigterm_to_the_cli_alone_ends_it_like_ctrl_c(tmp_path):
    """SIGTERM sent to ftforge alone (`kill PID`, a supervisor, a CI timeout) -- its audit
    workers do not get it: the CLI's handler turns it into the Ctrl-C path, which ends
    every worker, says "terminated" and exits 143 (it died at once, workers left
    running and the channel lock's holder gone mid-publish)."""
    _packages(tmp_path)
    script = tmp_path / "terminated.py"
    script.write_text(_interrupting_script(tmp_path, "os.kill(os.getpid(), signal.SIGTERM)")
                      + textwrap.dedent("""
        import sys
        from ftforge import cli
        from ftforge.channel import audit
        def audit_packages(paths, limits=None):
            try:
                return list(audit_pool.audit_each(paths, ready=ready))
            finally:
                print("children left:", len(children()), flush=True)

        audit.audit_packages = audit_packages
        sys.argv = ["ftforge", "channel", "audit", *map(str, paths)]
        cli.main()
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 143, run
    assert run.stdout.strip() == "children left: 0", run
    assert run.stderr.strip().splitlines()[-1] == "terminated", run.stderr
    assert "Traceback" not in run.stderr


def test_a_second_sigterm_does_not_cut_the_clean_up_short(tmp_path):
    """After the first SIGTERM the CLI ignores the next ones (a supervisor repeating
    itself): the clean-up the first one started runs to its end."""
    script = tmp_path / "twice.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from ftforge import cli
        signal.signal(signal.SIGTERM, cli._on_sigterm)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            raise SystemExit("the first SIGTERM did not interrupt")
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)  # ignored now
            print("clean-up ran; SIGTERM ignored:",
                  signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run
    assert run.stdout.strip() == "clean-up ran; SIGTERM ignored: True"


def test_the_callers_directory_environment_and_limits_do_not_reach_the_workers(tmp_path):
    """A pickle.py where the user stands (python -c would import it first), a
    sitecustomize that prints (it would garble the answers if they shared stdout)
    and a Limits subclass defined in the caller's script (a worker cannot unpickle
    it): the pooled audit still gives every report."""
    _packages(tmp_path, bad={5})
    shadow = tmp_path / "where-the-user-stands"
    shadow.mkdir()
    (shadow / "pickle.py").write_text("raise SystemExit('the pickle.py here was imported')\n")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('hello from sitecustomize')\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    script = scripts / "caller.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from ftforge.channel import audit_pool
        from ftforge.limits import ArchiveLimits
        audit_pool._cpus = lambda: 2
        audit_pool.POOL_MIN_PACKAGES = {POOL_FROM}

        class Strict(ArchiveLimits):
            pass

        paths = sorted(Path({str(tmp_path / "in")!r}).glob("*.conda"))
        reports = list(audit_pool.audit_each(paths, Strict(max_members=64)))
        print("reports", len(reports), "refused", sum(not r.ok for r in reports))
    """))
    run = subprocess.run([sys.executable, str(script)], cwd=shadow, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == f"reports {COUNT} refused 1"


def test_workers_that_cannot_start_leave_the_audit_to_this_process(tmp_path, two_cpus,
                                                                     monkeypatch):
    """Out of file descriptors at the second worker: the first is ended and every
    package is audited here."""
    paths = _packages(tmp_path)
    made = []

    class Scarce(audit_pool._Worker):
        def __init__(self) -> None:
            if made:
                raise OSError(24, "Too many open files")
            super().__init__()
            made.append(self)

    monkeypatch.setattr(audit_pool, "_Worker", Scarce)
    reports = list(audit_each(paths))
    assert [r.path for r in reports] == paths and all(r.ok for r in reports)
    assert len(made) == 1 and made[0].process.poll() is not None
