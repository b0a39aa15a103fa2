"""The migration bot over a fixture set of 15 feedstocks (real git repositories)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.migrate.plan import Migration, plan_migration
from ftforge.migrate.run import run_migration
from ftforge.migrate.status import write_status
from ftforge.variants import PythonVariant

from ..feedstocks import make_fixture_set

MIG = Migration.parse("python313t")
EXPECTED = {
    "libyaml": "not-needed", "requests": "not-needed",
    "cython": "ready", "msgpack-python": "ready", "psutil": "ready", "bar-split": "ready",
    "rust-ext": "ready", "pytest-ext": "ready",
    "numpyish": "awaiting-parents", "scipyish": "awaiting-parents",
    "astroish": "awaiting-parents",
    "dirty": "local-changes", "broken": "bot-error",
    "noevidence": "not-solvable", "denied": "not-solvable",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def refs(repos: dict[str, Path]) -> dict[str, str]:
    return {name: git(repo, "rev-parse", "HEAD") + git(repo, "for-each-ref") +
            git(repo, "status", "--porcelain") for name, repo in repos.items()}


@pytest.fixture
def feedstocks(tmp_path) -> dict[str, Path]:
    return make_fixture_set(tmp_path / "feedstocks")


def test_plan_categories_order_and_reasons(feedstocks):
    assert len(feedstocks) >= 12
    plan = plan_migration(next(iter(feedstocks.values())).parent, MIG, denylist=["denied"])
    got = {name: state.category for name, state in plan.feedstocks.items()}
    assert got == EXPECTED
    # a valid topological order of everything that needs the migration
    position = {name: i for i, name in enumerate(plan.order)}
    for parent, child in plan.graph.edges:
        if parent in position and child in position:
            assert position[parent] < position[child], (parent, child)
    assert position["cython"] < position["numpyish"] < position["scipyish"] < position["astroish"]
    broken = plan.feedstocks["broken"].reason
    assert "broken-feedstock/recipe/meta.yaml:11:" in broken and "YAML" in broken
    assert plan.feedstocks["psutil"].abi3
    # the test-only dependency on scipyish (awaiting) does not block pytest-ext
    assert "scipyish" not in plan.feedstocks["pytest-ext"].parents
    assert plan.feedstocks["bar-split"].outputs == ["libbar", "py-bar"]
    assert plan.feedstocks["astroish"].parents == ["numpyish", "scipyish"]


def test_run_migrates_ready_feedstocks_only_and_is_idempotent(feedstocks, tmp_path):
    root = next(iter(feedstocks.values())).parent
    dirty_before = (feedstocks["dirty"] / "recipe" / "meta.yaml").read_text()
    before = refs(feedstocks)
    plan = plan_migration(root, MIG, denylist=["denied"])
    result = run_migration(plan, MIG, pr_dir=tmp_path / "prs")
    ready = sorted(n for n, c in EXPECTED.items() if c == "ready")
    assert sorted(result.migrated) == ready
    after = refs(feedstocks)
    for name in feedstocks:
        head = git(feedstocks[name], "rev-parse", "HEAD")
        assert before[name].startswith(head), f"{name}: HEAD moved"
        assert git(feedstocks[name], "status", "--porcelain") == (
            " M recipe/meta.yaml\n" if name == "dirty" else ""), name
        has_branch = MIG.branch in git(feedstocks[name], "branch", "--list", MIG.branch)
        assert has_branch == (name in ready), name
    assert (feedstocks["dirty"] / "recipe" / "meta.yaml").read_text() == dirty_before

    for name in ready:
        repo = feedstocks[name]
        changed = git(repo, "diff", "--name-only", "main", MIG.branch).split()
        recipe = [c for c in changed if c.startswith("recipe/")]
        assert len(recipe) == 1
        assert set(changed) - set(recipe) == {
            MIG.migration_file, ".ci_support/linux_64_python3.13.____cp313t.yaml"}, changed
        diff = git(repo, "diff", "-U0", "main", MIG.branch, "--", recipe[0])
        body = [line for line in diff.splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert len(body) == 2 and all("number:" in line for line in body), body
        assert body[0].startswith("-") and body[1].startswith("+")
        migration = YAML(typ="safe").load(git(repo, "show", f"{MIG.branch}:{MIG.migration_file}"))
        # no pinning: ftforge's own file, kept by conda-smithy through use_local
        assert set(migration) == {"__migrator", "migrator_ts", "python", "is_freethreading",
                                  "is_abi3"}
        assert migration["migrator_ts"] == plan.migrator_ts
        assert migration["__migrator"]["use_local"] is True
        assert migration["__migrator"]["operation"] == "key_add"
        assert migration["__migrator"]["primary_key"] == "python"
        assert migration["__migrator"]["additional_zip_keys"] == ["is_freethreading", "is_abi3"]
        assert "build_number" not in migration["__migrator"]
        assert migration["python"] == [PythonVariant.ft("3.13").python_spec]
        assert migration["is_freethreading"] == [True] and migration["is_abi3"] == [False]
        gil_file = git(repo, "show", "main:.ci_support/linux_64_python3.13.____cp313.yaml")
        ft_file = git(repo, "show", f"{MIG.branch}:.ci_support/linux_64_python3.13.____cp313t.yaml")
        assert ft_file == gil_file.replace("- 3.13.* *_cp313\n", "- 3.13.* *_cp313t\n")
    v1 = git(feedstocks["psutil"], "show", f"{MIG.branch}:recipe/recipe.yaml")
    assert "number: 1  # keep this comment" in v1  # ruamel round trip kept the comment
    pr = (tmp_path / "prs" / "psutil.md").read_text()
    assert "version-specific" in pr and "abi3" in pr.lower()

    again = run_migration(plan_migration(root, MIG, denylist=["denied"]), MIG,
                          pr_dir=tmp_path / "prs")
    assert again.migrated == []
    assert set(again.skipped) == set(ready)
    assert refs(feedstocks) == after, "a second run changed a repository"


def test_done_from_the_channel_or_a_merged_branch_unblocks_children(feedstocks, tmp_path):
    root = next(iter(feedstocks.values())).parent
    # a variant-complete channel: the free-threaded build is published with its GIL twin
    twins = [SyntheticPackage(
        "cython", "3.3.1", v.extension_build_string("abcdef0", 0), subdir="linux-64",
        depends=[v.python_abi_spec], files={f"{v.site_packages}/Cython/__init__.py": b""})
        for v in (PythonVariant.ft("3.13"), PythonVariant.gil("3.13"))]
    channel = tmp_path / "channel"
    publish([write_package(p, tmp_path / "pkgs") for p in twins], channel)
    plan = plan_migration(root, MIG, channels=[channel])
    assert plan.feedstocks["cython"].category == "done"
    assert plan.feedstocks["numpyish"].category == "ready"
    assert plan.feedstocks["scipyish"].category == "awaiting-parents"

    # an open branch is not done; merging it is
    run_migration(plan_migration(root, MIG), MIG, pr_dir=tmp_path / "prs")
    assert plan_migration(root, MIG).feedstocks["numpyish"].category == "awaiting-parents"
    git(feedstocks["cython"], "merge", "-q", "--ff-only", MIG.branch)
    plan = plan_migration(root, MIG)
    assert plan.feedstocks["cython"].category == "done"
    assert plan.feedstocks["numpyish"].category == "ready"


def test_python314t_waits_for_the_gil_314_variants(feedstocks, tmp_path):
    """These feedstocks build python 3.13 only: the free-threaded 3.14 files would have
    no GIL 3.14 file to derive from, so they wait for the python314 migration."""
    mig = Migration.parse("python314t")
    root = next(iter(feedstocks.values())).parent
    plan = plan_migration(root, mig)
    assert plan.feedstocks["msgpack-python"].category == "awaiting-migrators"
    assert "python314" in plan.feedstocks["msgpack-python"].reason
    result = run_migration(plan, mig, pr_dir=tmp_path / "prs")
    assert result.migrated == []
    assert mig.branch not in git(feedstocks["msgpack-python"], "branch", "--list")


def test_status_json_and_page_in_headless_chromium(feedstocks, tmp_path):
    root = next(iter(feedstocks.values())).parent
    plan = plan_migration(root, MIG, denylist=["denied"])
    json_path, html_path = write_status(plan, tmp_path / "status")
    data = json.loads(json_path.read_text())
    assert data["categories"]["ready"] == sorted(
        n for n, c in EXPECTED.items() if c == "ready")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "chromium missing: run scripts/setup"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "status.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1400",
                    html_path.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000
    dom = subprocess.run([chromium, *flags, "--dump-dom", html_path.as_uri()], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert "data-name=\"astroish\"" in dom and "<svg" in dom
    assert "waiting for cython" in dom
    for category, names in data["categories"].items():
        assert f"id=\"count-{category}\"" in dom
        for name in names:
            assert f"data-feedstock=\"{name}\"" in dom
    out = Path(__import__("os").environ.get("FTFORGE_ARTIFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, out / "migration-status.png")


def test_cli_plan_run_status(feedstocks, tmp_path):
    root = next(iter(feedstocks.values())).parent
    cli = [sys.executable, "-m", "ftforge.cli", "migrate"]
    plan = subprocess.run([*cli, "plan", str(root), "--deny", "denied"], capture_output=True,
                          text=True, check=True)
    assert "awaiting-parents" in plan.stdout and "order:" in plan.stdout
    run = subprocess.run([*cli, "run", str(root), "--pr-dir", str(tmp_path / "prs")],
                         capture_output=True, text=True, check=True)
    assert "migrated cython" in run.stdout


def test_pypi_cp313t_wheels_are_evidence(feedstocks, tmp_path):
    root = next(iter(feedstocks.values())).parent
    wheels = tmp_path / "wheels.json"
    wheels.write_text(json.dumps({
        "noevidence": ["noevidence-0.1.0-cp313-cp313t-manylinux_2_28_x86_64.whl"],
        "denied": ["denied-0.3.0-cp313-cp313t-manylinux_2_28_x86_64.whl"]}))
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "migrate", "plan", str(root),
                             "--deny", "denied", "--pypi-wheels", str(wheels)],
                            capture_output=True, text=True, check=True)
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert rows["noevidence"] == "ready"
    assert rows["denied"] == "not-solvable"  # the denylist wins over evidence
