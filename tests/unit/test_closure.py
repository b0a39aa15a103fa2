"""The requirement closure: one version per project satisfying every constraint; order."""

import pytest

from ftforge.pypi import DistFile, Project
from ftforge.recipes.closure import ClosureError, PlannedRecipe, build_order, plan_closure


def project(name, versions):
    return Project(name, max(versions), {
        v: (DistFile(f"{name}-{v}.tar.gz", f"https://x/{name}-{v}.tar.gz", "0" * 64, "sdist"),)
        for v in versions}, {})


PROJECTS = {
    "app": project("app", ["1.0"]),
    "lib": project("lib", ["1.0", "2.0", "3.0"]),
    "tool": project("tool", ["84.0", "84.2"]),
    "wheelonly": Project("wheelonly", "1.0", {"1.0": (
        DistFile("w-1.0-py3-none-any.whl", "https://x/w.whl", "0" * 64, "bdist_wheel"),)}, {}),
}
REQUIRES = {  # name -> (host, run)
    "app": (["tool"], ["lib >=1", "other"]),
    "other": (["tool <84.1"], ["lib <3"]),
    "lib": (["tool"], []),
    "tool": ([], []),
}
PROJECTS["other"] = project("other", ["0.5"])


def fake_generate(spec):
    name, version = spec.split("==")
    host, run = REQUIRES[name]
    body = "requirements:\n  host:\n    - python\n" + "".join(f"    - {h}\n" for h in host)
    body += "  run:\n    - python\n" + "".join(f"    - {r}\n" for r in run)
    return name, {"recipe.yaml": f"# {spec}\n{body}"}


def test_one_version_per_project_satisfying_every_constraint():
    planned = {p.conda_name: p for p in plan_closure("app", fake_generate,
                                                     project_of=PROJECTS.__getitem__)}
    assert planned["lib"].version == "2.0"     # >=1 and <3
    assert planned["tool"].version == "84.0"   # <84.1 from `other`
    order = [p.conda_name for p in build_order(list(planned.values()))]
    assert order.index("tool") < order.index("lib") < order.index("app")
    assert order.index("other") < order.index("app")


def test_unsatisfiable_constraint_names_the_project():
    with pytest.raises(ClosureError, match="lib: no release with an sdist satisfies '>=4'"):
        plan_closure("lib>=4", fake_generate, project_of=PROJECTS.__getitem__)


def test_wheel_only_dependency_is_refused():
    with pytest.raises(ClosureError, match="wheelonly"):
        plan_closure("wheelonly", fake_generate, project_of=PROJECTS.__getitem__)


def test_cycle_is_reported():
    a = PlannedRecipe("a", "1", "a", {}, ("b",))
    b = PlannedRecipe("b", "1", "b", {}, ("a",))
    with pytest.raises(ClosureError, match="dependency cycle"):
        build_order([a, b])


def test_c_library_packages_are_not_looked_up_on_pypi():
    """pyyaml's recipe needs the conda package `yaml` (libyaml); PyPI has no such project."""
    def generate(spec):
        name, _ = spec.split("==")
        host = ["python", "yaml", "zlib"] if name == "pyyaml" else ["python"]
        body = "requirements:\n  host:\n" + "".join(f"    - {h}\n" for h in host)
        return name, {"recipe.yaml": body + "  run:\n    - python\n"}

    projects = {"pyyaml": project("pyyaml", ["6.0.3"])}
    planned = plan_closure("pyyaml", generate, project_of=projects.__getitem__)
    assert [p.conda_name for p in planned] == ["pyyaml"]
