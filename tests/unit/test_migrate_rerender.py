"""The migration branches against conda-forge's rules: the pinning's migration file
(kept by conda-smithy), variant files for every platform named and keyed as a
rerender makes them, the CI job lists and README table, wait_for_migrators, and
the states after ``run``. Fixtures: tests/feedstocks.py (conda-forge-like
feedstocks) and tests/fixtures/pinning (a small pinning written for these tests).

Golden files: tests/fixtures/migrate_golden/*.diff are the branch diffs;
regenerate them with ``FTFORGE_UPDATE_GOLDEN=1`` after a deliberate change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ftforge.migrate.pinning import Pinning, PinningError
from ftforge.migrate.plan import Migration, plan_migration
from ftforge.migrate.rerender import config_name, loop_vars_of
from ftforge.migrate.run import run_migration
from ftforge.migrate.status import write_status
from ftforge.variants import PythonVariant

from ..feedstocks import PINNING_DIR, PLATFORMS, make_cf_fixture_set

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "migrate_golden"
MIG = Migration.parse("python314t")
TS = 1764000000  # migrator_ts for ftforge's own files, fixed so the golden diffs are stable


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def base_yaml(text: str) -> dict:
    return YAML(typ="base").load(text)


@pytest.fixture
def cf(tmp_path) -> dict[str, Path]:
    return make_cf_fixture_set(tmp_path / "feedstocks")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """One run over the fixture set, shared by the tests that only read its branches."""
    tmp_path = tmp_path_factory.mktemp("migrated")
    cf = make_cf_fixture_set(tmp_path / "feedstocks")
    root = next(iter(cf.values())).parent
    plan = plan_migration(root, MIG, pinning=PINNING_DIR, migrator_ts=TS)
    result = run_migration(plan, MIG, pr_dir=tmp_path / "prs")
    return cf, plan, result, tmp_path / "prs"


def branch_files(repo: Path, branch: str, prefix: str = ".ci_support/") -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", branch, "--", prefix).split()
    return {n: git(repo, "show", f"{branch}:{n}") for n in names}


def test_categories_with_the_pinning(migrated):
    _cf, plan, result, _prs = migrated
    got = {n: s.category for n, s in plan.feedstocks.items()}
    assert got == {"zstdish": "branch-made", "crcish": "branch-made", "abi3ish": "branch-made",
                   "ftkeyish": "branch-made", "waitish": "awaiting-migrators"}
    assert plan.wait_for_migrators == ["python314"]
    assert plan.to_json()["migrator_ts"] == 1755000000  # the pinning's, recorded
    assert "python314" in plan.feedstocks["waitish"].reason
    assert sorted(result.migrated) == ["abi3ish", "crcish", "ftkeyish", "zstdish"]


def test_the_pinning_migration_file_is_copied_verbatim_so_a_rerender_keeps_it(migrated):
    cf, plan, result, _prs = migrated
    pinned = (PINNING_DIR / "migrations" / "python314t.yaml").read_text()
    assert plan.migration_origin.endswith("migrations/python314t.yaml")
    for name in result.migrated:
        text = git(cf[name], "show", f"{MIG.branch}:{MIG.migration_file}")
        assert text == pinned, name
        # conda-smithy's rule: same file name and migrator_ts as in the pinning
        ours, theirs = base_yaml(text), base_yaml(pinned)
        assert ours["migrator_ts"] == theirs["migrator_ts"] == "1755000000"


def test_variant_files_for_every_platform_named_as_conda_smithy_names_them(migrated):
    cf, _plan, _result, _prs = migrated
    zstd_new = sorted(set(branch_files(cf["zstdish"], MIG.branch))
                      - set(branch_files(cf["zstdish"], "main")))
    assert zstd_new == sorted(
        [f".ci_support/{p}_python3.14.____cp314t.yaml" for p in PLATFORMS]
        + [MIG.migration_file])
    abi3_new = set(branch_files(cf["abi3ish"], MIG.branch)) - set(
        branch_files(cf["abi3ish"], "main"))
    assert {p.split("/")[-1] for p in abi3_new} == {
        "linux_64_python3.14.____cp314t.yaml", "linux_aarch64_python3.14.____cp314t.yaml",
        "osx_arm64_python3.14.____cp314t.yaml", "python314t.yaml"}
    # nothing for a python the feedstock does not build yet
    assert not any("cp313t" in p for p in abi3_new)


def _apply_key_add(pinning: Pinning, migration: dict) -> list[tuple]:
    """conda-smithy's key_add over the pinning: the zip group of python plus the
    migration's additional keys, each needing a value in the migration ("Required
    zip_key ... not specified"); returns the new group tuples."""
    group = pinning.zip_group("python") + [
        k for k in migration["__migrator"].get("additional_zip_keys", [])
        if k not in pinning.zip_group("python")]
    missing = [k for k in group if k not in migration]
    assert not missing, f"Required zip_key {missing} not specified"
    return [dict(zip(group, values)) for values in zip(*(migration[k] for k in group))]


def test_each_derived_file_renders_against_the_pinnings_zip_keys(migrated):
    cf, _plan, result, _prs = migrated
    pinning = Pinning.load(PINNING_DIR)
    checked = 0
    for name in result.migrated:
        repo = cf[name]
        migration = base_yaml(git(repo, "show", f"{MIG.branch}:{MIG.migration_file}"))
        (new_entry,) = _apply_key_add(pinning, migration)
        before = branch_files(repo, "main")
        for path, text in branch_files(repo, MIG.branch).items():
            if path in before or "/migrations/" in path:
                continue
            config = base_yaml(text)
            # every zip group complete, every list the same length
            for group in config.get("zip_keys", []):
                assert all(k in config for k in group), (path, group)
                assert len({len(config[k]) for k in group}) == 1, (path, group)
            # python and every key zipped with it as the migration says
            for key, value in new_entry.items():
                if key in config:
                    assert config[key] == [value], (path, key)
            # every other key as in the GIL twin (compilers, stdlib, host pins, image)
            twin_path = path.replace("____cp314t", "____cp314")
            twin = base_yaml(before[twin_path])
            assert set(config) == set(twin), path
            for key in set(config) - set(new_entry):
                assert config[key] == twin[key], (path, key)
            # the name is conda-smithy's for these keys
            platform = "_".join(Path(path).stem.split("_")[:2])
            vars_ = loop_vars_of(Path(twin_path).stem[len(platform) + 1:], twin)
            assert config_name(platform, config, vars_, name) == Path(path).stem
            checked += 1
    assert checked == 6 + 6 + 3  # zstdish, crcish: six platforms; abi3ish: three
    crc = base_yaml(git(cf["crcish"], "show",
                        f"{MIG.branch}:.ci_support/win_64_python3.14.____cp314t.yaml"))
    assert crc["is_python_min"] == ["false"] and crc["libcrc32c"] == ["1.1"]


def test_ci_job_lists_and_readme_name_every_variant_file(migrated):
    cf, _plan, result, _prs = migrated
    for name in result.migrated:
        repo = cf[name]
        configs = [Path(p).stem for p in branch_files(repo, MIG.branch)
                   if "/migrations/" not in p and p.endswith(".yaml")]
        azure = {p: YAML(typ="safe").load(t) for p, t in
                 branch_files(repo, MIG.branch, ".azure-pipelines/").items()}
        readme = git(repo, "show", f"{MIG.branch}:README.md")
        for config in configs:
            os_name = config.split("_")[0]
            matrix = azure[f".azure-pipelines/azure-pipelines-{os_name}.yml"][
                "jobs"][0]["strategy"]["matrix"]
            if name == "ftkeyish" and "cp314t" in config:
                continue
            assert matrix[config]["CONFIG"] == config, (name, config)
            assert list(matrix) == sorted(matrix), "conda-smithy writes the matrix sorted"
            assert f"<td>{config}</td>" in readme and f"%20{config}\"" in readme, config
        if name != "ftkeyish":
            assert any("cp314t" in c for c in configs)


def test_what_cannot_be_derived_is_a_needs_a_rerender_note(migrated):
    cf, _plan, result, prs = migrated
    assert set(result.needs_rerender) == {"ftkeyish"}
    body = (prs / "ftkeyish.md").read_text()
    assert "## Needs a rerender" in body and "is_freethreading" in body
    # no guessed file was written
    assert not [p for p in branch_files(cf["ftkeyish"], MIG.branch) if "cp314t" in p
                and "/migrations/" not in p]
    assert "Needs a rerender" not in (prs / "zstdish.md").read_text()


@pytest.mark.parametrize("name", ["zstdish", "crcish", "abi3ish", "ftkeyish"])
def test_branch_diff_matches_the_golden_file(migrated, name):
    cf, _plan, _result, _prs = migrated
    diff = git(cf[name], "diff", "main", MIG.branch)
    golden = GOLDEN / f"{name}.{MIG.name}.diff"
    if os.environ.get("FTFORGE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(diff)
    assert diff == golden.read_text()


def test_own_migration_file_when_the_pinning_has_none(cf, tmp_path):
    """python313t is not in the test pinning: ftforge writes a complete file of its own,
    kept through use_local, with every key the pinning zips with python."""
    mig = Migration.parse("python313t")
    root = next(iter(cf.values())).parent
    plan = plan_migration(root, mig, pinning=PINNING_DIR, migrator_ts=TS)
    assert plan.migration_origin == "ftforge" and plan.to_json()["migrator_ts"] == TS
    # crcish builds no 3.13t yet; the others do (their 3.13t files exist) but have no
    # migration file for it, so they are migrated as well
    assert plan.feedstocks["crcish"].category == "ready"
    result = run_migration(plan, mig, pr_dir=tmp_path / "prs")
    assert "crcish" in result.migrated
    text = git(cf["crcish"], "show", f"{mig.branch}:{mig.migration_file}")
    data = YAML(typ="safe").load(text)
    assert data["__migrator"]["use_local"] is True and data["migrator_ts"] == TS
    assert data["is_python_min"] == [False]  # read from the pinning's zip_keys
    pinning = Pinning.load(PINNING_DIR)
    (entry,) = _apply_key_add(pinning, base_yaml(text))
    assert entry == {"python": "3.13.* *_cp313t", "is_python_min": "false",
                     "is_freethreading": "true", "is_abi3": "false"}
    assert "use_local" in (tmp_path / "prs" / "crcish.md").read_text()
    diff = git(cf["crcish"], "diff", "main", mig.branch)
    golden = GOLDEN / "crcish.python313t.diff"
    if os.environ.get("FTFORGE_UPDATE_GOLDEN"):
        golden.write_text(diff)
    assert diff == golden.read_text()


def test_states_after_run_and_local_changes(cf, tmp_path):
    root = next(iter(cf.values())).parent
    readme = cf["zstdish"] / "README.md"
    readme.write_text(readme.read_text() + "\nlocal note\n")
    prs = tmp_path / "prs"
    plan = plan_migration(root, MIG, pinning=PINNING_DIR, pr_dir=prs)
    assert plan.feedstocks["zstdish"].category == "local-changes"
    run_migration(plan, MIG, pr_dir=prs)
    after = plan_migration(root, MIG, pinning=PINNING_DIR, pr_dir=prs)
    states = {n: s.category for n, s in after.feedstocks.items()}
    assert states == {"zstdish": "local-changes", "crcish": "branch-made",
                      "abi3ish": "branch-made", "ftkeyish": "branch-made",
                      "waitish": "awaiting-migrators"}
    assert after.feedstocks["crcish"].pr_body == str(prs / "crcish.md")
    # the commit is dated when it was made, not from a fixed timestamp
    made = int(git(cf["crcish"], "log", "-1", "--format=%ct", MIG.branch))
    assert abs(made - time.time()) < 86400
    json_path, html_path = write_status(after, tmp_path / "status")
    data = json.loads(json_path.read_text())
    assert data["categories"]["branch-made"] == ["abi3ish", "crcish", "ftkeyish"]
    assert data["categories"]["local-changes"] == ["zstdish"]
    assert data["categories"]["bot-error"] == []
    assert data["feedstocks"]["crcish"]["branch"] == MIG.branch
    assert data["wait_for_migrators"] == ["python314"]
    page = html_path.read_text()
    assert "id='count-branch-made'" in page and "id='count-local-changes'" in page
    assert f"branch <code>{MIG.branch}</code>" in page


def test_without_a_pinning_the_gil_series_is_still_waited_for(cf):
    root = next(iter(cf.values())).parent
    plan = plan_migration(root, MIG)
    assert plan.feedstocks["waitish"].category == "awaiting-migrators"
    assert plan.wait_for_migrators == [] and plan.migration_origin == "ftforge"


def test_hostile_pinnings_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(PinningError, match="no conda_build_config.yaml"):
        Pinning.load(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(PINNING_DIR, bad)
    (bad / "migrations" / "python314t.yaml").write_text(
        (PINNING_DIR / "migrations" / "python314t.yaml").read_text().replace(
            "- 3.14.* *_cp314t", "- 3.14.* *_cp314"))
    with pytest.raises(PinningError, match=r"python314t.yaml: adds python"):
        plan_migration(tmp_path, MIG, pinning=bad)
    (bad / "conda_build_config.yaml").write_text("zip_keys: [python\n")
    with pytest.raises(PinningError, match="conda_build_config.yaml.*not valid YAML"):
        Pinning.load(bad)
    (bad / "conda_build_config.yaml").write_text("python: [x]\nzip_keys: python\n")
    with pytest.raises(PinningError, match="zip_keys is not a list"):
        Pinning.load(bad)


def test_pinning_values_come_from_the_variant_facts():
    ft, gil = PythonVariant.ft("3.14"), PythonVariant.gil("3.14")
    assert ft.pinning_values["python"] == ft.python_spec
    assert ft.pinning_values["is_freethreading"] is True
    assert gil.pinning_values["is_abi3"] is True and ft.pinning_values["is_abi3"] is False


def test_cli_help_keeps_brackets_and_names_the_migrations_abi():
    out = subprocess.run([sys.executable, "-m", "ftforge.cli", "migrate", "plan", "--help"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    assert "[wheel file names on PyPI]" in out
    assert "cp314t for python314t" in out
    assert "[its conda_build_config.yaml and migrations/]" in out


def test_the_pinnings_exclude_list_is_honoured(cf, tmp_path):
    pinning = tmp_path / "pinning"
    shutil.copytree(PINNING_DIR, pinning)
    path = pinning / "migrations" / "python314t.yaml"
    path.write_text(path.read_text().replace("    - python_abi\n",
                                             "    - python_abi\n    - zstdish\n"))
    plan = plan_migration(next(iter(cf.values())).parent, MIG, pinning=pinning)
    assert plan.feedstocks["zstdish"].category == "not-solvable"
    assert "excluded by the pinning's python314t migration" in plan.feedstocks["zstdish"].reason
    assert plan.feedstocks["crcish"].category == "ready"


def _variant(python: str, **extra: str) -> str:
    keys = {"numpy": extra.get("numpy", "2.0"), "python": python,
            "target_platform": "linux-64", **extra}
    text = "".join(f"{k}:\n- {v}\n" for k, v in sorted(keys.items()) if k != "zip_keys")
    return text + extra.get("zip_keys", "")


def test_rerender_names_with_several_loop_keys_and_refuses_what_it_cannot_derive():
    from ftforge.migrate.pinning import migration_file_for
    from ftforge.migrate.rerender import rerender

    mig = Migration.parse("python314t")
    mfile = migration_file_for(mig.name, mig.variant, Pinning.load(PINNING_DIR),
                               feedstock_zip_group=[], migrator_ts=TS)
    # numpy varies too: it is part of the name, kept from the template
    files = {f".ci_support/linux_64_numpy{n}python3.14.____cp314.yaml":
             _variant("3.14.* *_cp314", numpy=n) for n in ("1.26", "2.0")}
    out = rerender(files, mfile, mig.variant, feedstock="npish", recipe_text="")
    assert sorted(out.new_configs) == ["linux_64_numpy1.26python3.14.____cp314t",
                                       "linux_64_numpy2.0python3.14.____cp314t"]
    assert out.files[".ci_support/linux_64_numpy1.26python3.14.____cp314t.yaml"] == \
        _variant("3.14.* *_cp314t", numpy="1.26")
    # no Azure file: said, not guessed
    assert any("azure-pipelines-linux.yml has no job" in n for n in out.notes)

    # a name conda-smithy shortened with a hash cannot be parsed back
    long_key = "x" * 200
    hashed = {".ci_support/linux_64_numpy2.0python3.14.____cp314" + "_h0123abcd.yaml":
              _variant("3.14.* *_cp314", verylongkey=long_key)}
    out = rerender(hashed, mfile, mig.variant, feedstock="npish", recipe_text="")
    assert out.new_configs == [] and "hash-shortened name" in out.notes[0]

    # python zipped with a key the migration gives no value for
    zipped = {".ci_support/linux_64_python3.14.____cp314.yaml": _variant(
        "3.14.* *_cp314", zip_keys="zip_keys:\n- - python\n  - numpy\n")}
    out = rerender(zipped, mfile, mig.variant, feedstock="npish", recipe_text="")
    assert out.new_configs == [] and "zips numpy with python" in out.notes[0]


def test_config_name_follows_the_windows_path_rule():
    config = {"python": ["3.14.* *_cp314t"], "verylongkey": ["y" * 150]}
    name = config_name("win_64", config, ["python", "verylongkey"], "some-package")
    repo = "some-package-feedstock"
    assert len(f"C:/Users/runnerx/_work/{repo}/{repo}/.ci_support/{name}.yaml") <= 259
    assert name.startswith("win_64_python3.14.____cp314t") and name[-10:-8] == "_h"


def test_parsing_a_hostile_file_name_back_is_not_exponential():
    # two keys spell every piece ("p00" + "a" and "p00a" + ""): 2**40 subsets spell the
    # name up to its last character, and none spells it whole
    config = {}
    for i in range(40):
        config[f"p{i:02d}"] = ["a"]
        config[f"p{i:02d}a"] = [""]
    name = "".join(f"p{i:02d}a" for i in range(40))
    assert loop_vars_of(name + "zz", config) is None
    assert loop_vars_of(name, config) == [f"p{i:02d}" for i in range(40)]


def test_variant_files_with_anchors_or_over_the_size_limit_are_not_expanded():
    """A hostile .ci_support file (billion laughs, or huge) is unreadable, not expanded;
    conda-build's python values with '*' inside scalars still read."""
    from ftforge.limits import RecipeLimits
    from ftforge.migrate.rerender import load_variant_file

    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8))
    assert load_variant_file(laughs) is None
    assert load_variant_file("a:\n- x\n" * (RecipeLimits().max_recipe_bytes // 7)) is None
    assert load_variant_file("python:\n- 3.13.* *_cp313t\n") == {"python": ["3.13.* *_cp313t"]}
