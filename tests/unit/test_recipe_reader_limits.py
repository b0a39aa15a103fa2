"""Hostile feedstocks: every one becomes that feedstock's one-line error naming its
recipe file and the rule; the plan goes on; the worker's time and memory limits hold.

Each recipe below crashed or hung ``migrate plan`` before (issue 13).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftforge.limits import RecipeLimits
from ftforge.migrate.plan import Migration, plan_migration
from ftforge.migrate.recipe_reader import RecipeError, read_recipe
from tests.feedstocks import make_feedstock, meta_ext

# Small limits so the bombs are caught quickly; the defaults are tested for their values.
LIMITS = RecipeLimits(render_seconds=3.0, render_memory_bytes=768 << 20)

META_HEAD = "package:\n  name: bad\n  version: '1.0'\n"
BILLION_LAUGHS = "package: {name: bad, version: '1'}\n" + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
    f"*a{i - 1}, *a{i - 1}, *a{i - 1}]\n" for i in range(1, 10)) + "requirements: {run: *a9}\n"

# name -> (recipe file, content (str or bytes), words the one-line reason must contain)
HOSTILE: dict[str, tuple[str, str | bytes, tuple[str, ...]]] = {
    "include": ("meta.yaml", "{% include 'other.yaml' %}\n" + META_HEAD, ("include",)),
    "import": ("meta.yaml", "{% import 'macros.j2' as m %}\n" + META_HEAD, ("import",)),
    "from-import": ("meta.yaml", "{% from 'x' import y %}\n" + META_HEAD, ("import",)),
    "huge-range": ("meta.yaml", "{% for i in range(10**9) %}{% endfor %}\n" + META_HEAD,
                   ("range()", "RecipeLimits.max_loop_items")),
    "nested-ranges": ("meta.yaml", "{% for i in range(100000) %}{% for j in range(100000) %}"
                      "{% endfor %}{% endfor %}\n" + META_HEAD,
                      ("RecipeLimits.render_seconds",)),
    "recursive-macro": ("meta.yaml", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}\n"
                        + META_HEAD, ("recursion",)),
    "string-times": ("meta.yaml", "{% set x = 'x' * 2000000000 %}\n" + META_HEAD,
                     ("'*'", "RecipeLimits.max_rendered_chars")),
    "power": ("meta.yaml", "{% set x = 7 ** 10000000 %}\n" + META_HEAD, ("'**'",)),
    "center-filter": ("meta.yaml", "{{ 'x' | center(1500000000) }}\n" + META_HEAD,
                      ("RecipeLimits.render_memory_bytes",)),
    "output-flood": ("meta.yaml", "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}\n"
                     + META_HEAD, ("RecipeLimits.max_rendered_chars",)),
    "py-in-3": ("meta.yaml", META_HEAD + "build:\n  skip: true  # [py in 3]\n",
                ("selector [py in 3]", "cannot be evaluated")),
    "linux-lt-a": ("meta.yaml", META_HEAD + "build:\n  skip: true  # [linux < 'a']\n",
                   ("selector [linux < 'a']",)),
    "nested-not": ("meta.yaml", META_HEAD + "build:\n  skip: true  # [" + "not " * 5000
                   + "linux]\n", ("RecipeLimits.max_selector_chars",)),
    "outputs-int": ("meta.yaml", META_HEAD + "outputs: 3\n", ("'outputs' must be a list",)),
    "outputs-strings": ("meta.yaml", META_HEAD + "outputs: [a, b]\n",
                        ("'outputs[0]' must be a mapping",)),
    "build-list": ("meta.yaml", META_HEAD + "build: [1, 2]\n", ("'build' must be a mapping",)),
    "requirements-str": ("meta.yaml", META_HEAD + "requirements: python\n",
                         ("'requirements' must be a mapping",)),
    "host-mapping": ("meta.yaml", META_HEAD + "requirements:\n  host: {python: 1}\n",
                     ("'requirements/host' must be a list",)),
    "not-utf8": ("meta.yaml", META_HEAD.encode() + b"about:\n  summary: caf\xe9\n",
                 ("not UTF-8",)),
    "number-inf": ("meta.yaml", META_HEAD + "build:\n  number: 1e999999\n",
                   ("build number",)),
    "number-digits": ("meta.yaml", META_HEAD + "build:\n  number: " + "9" * 5000 + "\n",
                      ("cannot be read",)),
    "number-negative": ("meta.yaml", META_HEAD + "build:\n  number: -1\n", ("build number",)),
    "billion-laughs": ("meta.yaml", BILLION_LAUGHS, ("RecipeLimits.max_yaml_nodes",)),
    "recursive-alias": ("meta.yaml", META_HEAD + "extra: &e\n  self: *e\n",
                        ("recursive alias",)),
    "deep-yaml": ("meta.yaml", META_HEAD + "extra: " + "[" * 5000 + "]" * 5000 + "\n",
                  ("YAML",)),
    "sandbox-escape": ("meta.yaml", "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
                       + META_HEAD, ("Jinja",)),
    "too-big": ("meta.yaml", META_HEAD + "#" * (2 << 20) + "\n",
                ("RecipeLimits.max_recipe_bytes",)),
    "v1-context-list": ("recipe.yaml", "context: [1, 2]\npackage: {name: bad, version: '1'}\n",
                        ("'context' must be a mapping",)),
    "v1-if-typeerror": ("recipe.yaml", "package: {name: bad, version: '1'}\nrequirements:\n"
                        "  host:\n    - if: py in 3\n      then: python\n", ("if:", "py in 3")),
    "v1-expression-range": ("recipe.yaml", "context:\n  x: ${{ range(10**9) | list }}\n"
                            "package: {name: bad, version: '1'}\n", ("range()",)),
}


def _feedstock(root: Path, name: str, recipe_file: str, content: str | bytes) -> Path:
    recipe = root / f"{name}-feedstock" / "recipe"
    recipe.mkdir(parents=True)
    target = recipe / recipe_file
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    return recipe.parent


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_recipe_is_that_feedstocks_one_line_error(tmp_path, name):
    recipe_file, content, words = HOSTILE[name]
    repo = _feedstock(tmp_path, name, recipe_file, content)
    with pytest.raises(RecipeError) as info:
        read_recipe(repo, freethreading=True, limits=LIMITS)
    message = info.value.message
    assert message.startswith(str(repo / "recipe" / recipe_file)), message
    assert "\n" not in message, message
    for word in words:
        assert word in message, message


def test_the_worker_survives_its_limits_and_reads_the_next_recipe(tmp_path):
    """A timeout kills the worker and a MemoryError happens inside it; the next
    feedstock is read normally (by a new or the same worker)."""
    good = _feedstock(tmp_path, "good", "meta.yaml", meta_ext("good", "1.0"))
    for bomb in ("nested-ranges", "center-filter"):
        recipe_file, content, _ = HOSTILE[bomb]
        with pytest.raises(RecipeError):
            read_recipe(_feedstock(tmp_path, bomb, recipe_file, content), limits=LIMITS)
        assert read_recipe(good, limits=LIMITS).name == "good"


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if ".git" not in p.parts}


def test_plan_reports_each_hostile_feedstock_and_goes_on(tmp_path, capsys):
    root = tmp_path / "feedstocks"
    quick = {k: v for k, v in HOSTILE.items() if k not in ("nested-ranges", "center-filter")}
    for name, (recipe_file, content, _) in quick.items():
        _feedstock(root, name, recipe_file, content)
    make_feedstock(root, "good", "meta.yaml", meta_ext("good", "1.0"))
    before = _snapshot(tmp_path)
    plan = plan_migration(root, Migration.parse("python313t"))
    states = plan.feedstocks
    refused = {n for n, s in states.items() if s.category == "bot-error"}
    changed = int(_snapshot(tmp_path) != before)
    with capsys.disabled():
        print(f"\nfeedstock corpus: {len(quick)} kinds tried, {len(refused)} reported as "
              f"bot-error, {changed} states changed")
    assert refused == set(quick) and changed == 0
    assert states["good"].category != "bot-error"
    for name, state in states.items():
        if name != "good":
            assert "-feedstock/recipe/" in state.reason and "\n" not in state.reason, state


def test_default_limits_are_documented_values():
    limits = RecipeLimits()
    assert (limits.render_seconds, limits.render_memory_bytes) == (10.0, 1 << 30)
    assert limits.max_loop_items == 100_000 and limits.max_yaml_nodes == 1_000_000


def _cli(*args):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "ftforge.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "400"})


def test_cli_plan_shows_rule_text_with_brackets_and_refuses_bad_options(tmp_path):
    root = tmp_path / "feedstocks"
    _feedstock(root, "bsd", "meta.yaml", META_HEAD + "build:\n  skip: true  # [freebsd]\n")
    result = _cli("migrate", "plan", str(root))
    assert result.returncode == 0, result.stderr
    assert "selector [freebsd]: unknown selector name 'freebsd'" in result.stdout, result.stdout
    wheels = tmp_path / "wheels.json"
    wheels.write_text("[1, 2]")
    for args, expected in ((["--migration", "pythont"], "unknown migration 'pythont'"),
                           (["--pypi-wheels", str(wheels)], "expected a JSON object")):
        result = _cli("migrate", "plan", str(root), *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr


# --------------------------------------------------------------------------- properties
import json  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalar = st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.sampled_from(
    ["python", "x", "${{ v }}", "${{ v | int }}", "${{ 1/0 }}", "${{ nope.y }}", "${{ [1][3] }}",
     "py >= 313", "linux", "", "${{ compiler('c') }}", "python-abi3", "${{ range(10**9) }}"])
_chaos = st.recursive(_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["name", "if", "then", "else", "python", "imports", "run", "host", "build",
                     "requirements", "package", "number", "noarch", "requires"]), c, max_size=3),
    max_leaves=10)


def _section(*keys):
    return st.fixed_dictionaries({}, optional={k: _chaos for k in keys}) | _chaos


_recipe = st.fixed_dictionaries(
    {"package": st.fixed_dictionaries({"name": st.just("x")}, optional={"version": _chaos})},
    optional={"context": st.dictionaries(st.sampled_from(["v", "w", "x y"]), _chaos, max_size=3)
              | _chaos,
              "build": _section("number", "noarch", "python_version_independent"),
              "requirements": _section("build", "host", "run"),
              "outputs": st.lists(_section("name", "package", "requirements", "build", "test"),
                                  max_size=3) | _chaos,
              "test": _section("imports", "requires"),
              "tests": st.lists(_section("python", "requirements"), max_size=2) | _chaos})


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=_recipe, v1=st.booleans())
def test_property_any_recipe_shape_is_read_or_refused_never_a_traceback(tmp_path, data, v1):
    """In-process (no worker catch-all): every wrong type or expression is a RecipeError."""
    text = json.dumps(data)  # JSON is YAML
    repo = tmp_path / ("v1" if v1 else "meta")
    (repo / "recipe").mkdir(parents=True, exist_ok=True)
    name = "recipe.yaml" if v1 else "meta.yaml"
    for old in (repo / "recipe").iterdir():
        old.unlink()
    (repo / "recipe" / name).write_text(text if v1 else text.replace("${{", "{{"))
    small = RecipeLimits(max_loop_items=1000, max_rendered_chars=100_000)
    try:
        recipe = read_recipe(repo, limits=small, isolated=False)
    except RecipeError as exc:
        assert "\n" not in exc.message and exc.message.startswith(str(repo / "recipe" / name))
    else:
        assert recipe.name == "x" and all(isinstance(o, str) for o in recipe.outputs)


def test_a_recipe_linking_out_of_its_feedstock_is_refused_unread(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("build:\n  number: SECRET-KEY-MATERIAL\n")
    repo = tmp_path / "linked-feedstock"
    (repo / "recipe").mkdir(parents=True)
    (repo / "recipe" / "meta.yaml").symlink_to(secret)
    with pytest.raises(RecipeError, match="link to a file outside the feedstock") as info:
        read_recipe(repo, limits=LIMITS)
    assert "SECRET" not in info.value.message
