"""Read conda-forge recipes without executing them: ``meta.yaml`` and ``recipe.yaml`` (v1).

``meta.yaml``: Jinja2 rendered in a *sandboxed* environment (no attribute
access to internals, no imports) with conda-build's helper functions stubbed
(``compiler``, ``stdlib``, ``pin_subpackage``, ...), then line selectors
(``# [linux and py>=313]``) evaluated with a small AST evaluator over a fixed
set of names. ``recipe.yaml``: ruamel.yaml, ``context`` variables, ``${{ }}``
expressions rendered by the same sandbox, ``if/then/else`` list items
evaluated the same way. Errors carry the file and line.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FtforgeError
from ..variants import DEFAULT_SERIES, PYTHON_MIN

__all__ = ["Recipe", "RecipeError", "read_recipe"]


class RecipeError(FtforgeError):
    """A recipe that cannot be read; ``file`` and ``line`` say where."""

    def __init__(self, file: Path, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {message}", hint="fix the recipe on the feedstock's "
                         "default branch; the bot retries on its next run")
        self.file, self.line = file, line


@dataclass
class Recipe:
    path: Path
    format: str  # "meta.yaml" | "recipe.yaml"
    name: str
    version: str
    build_number: int
    outputs: list[str]
    build: set[str] = field(default_factory=set)
    host: set[str] = field(default_factory=set)
    run: set[str] = field(default_factory=set)
    test: set[str] = field(default_factory=set)
    noarch: str | None = None
    compilers: set[str] = field(default_factory=set)
    abi3: bool = False
    imports: list[str] = field(default_factory=list)


# The names a selector or `if:` may use, for the linux-64 target.
def _selector_names(python: tuple[int, int], freethreading: bool) -> dict[str, object]:
    return {
        "linux": True, "linux64": True, "unix": True, "x86_64": True, "x86": False,
        "win": False, "win64": False, "osx": False, "arm64": False, "aarch64": False,
        "ppc64le": False, "py": python[0] * 100 + python[1], "py3k": True, "py2k": False,
        "is_freethreading": freethreading, "build_platform": "linux-64",
        "target_platform": "linux-64", "cuda_compiler_version": "None",
        "python_impl": "cpython", "np": 200,
    }


_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare,
            ast.Name, ast.Load, ast.Constant, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
            ast.GtE, ast.In, ast.NotIn)


def evaluate_selector(expr: str, names: dict[str, object]) -> bool:
    tree = ast.parse(expr.strip(), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"unsupported selector syntax: {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id not in names:
            raise ValueError(f"unknown selector name '{node.id}'")
    return bool(eval(compile(tree, "<selector>", "eval"), {"__builtins__": {}}, dict(names)))  # noqa: S307 - AST checked above


class _Compiler(str):
    """``compiler('c')`` renders to a name the graph can recognise."""


@functools.cache
def _jinja_env(variable_start: str = "{{", variable_end: str = "}}"):
    """One sandbox per delimiter style (immutable, so shared by every render)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(variable_start_string=variable_start,
                                        variable_end_string=variable_end,
                                        keep_trailing_newline=True)
    env.globals.update({
        "compiler": lambda lang: _Compiler(f"__compiler_{lang}"),
        "stdlib": lambda lang: f"__stdlib_{lang}",
        "pin_subpackage": lambda name, *a, **k: name,
        "pin_compatible": lambda name, *a, **k: name,
        "cdt": lambda name: f"__cdt_{name}",
        "load_setup_py_data": lambda *a, **k: {},
        "load_file_regex": lambda *a, **k: None,
        "environ": {}, "os": None,
        "python_min": PYTHON_MIN, "PYTHON": "python", "PY_VER": DEFAULT_SERIES,
    })
    return env


_SELECTOR = re.compile(r"^(?P<body>.*?)\s*#\s*\[(?P<expr>[^\]]+)\]\s*$")


def _name_of(spec: object) -> str | None:
    text = str(spec).strip()
    if not text:
        return None
    name = re.split(r"[\s=<>!~]", text, maxsplit=1)[0]
    return name or None


def _yaml_error_line(exc: Exception) -> int | None:
    # the context ("while parsing a flow sequence") is where the broken construct starts
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _read_meta_yaml(path: Path, names: dict[str, object]) -> dict:
    from jinja2 import TemplateError
    from ruamel.yaml import YAML, YAMLError

    text = path.read_text()
    try:
        rendered = _jinja_env().from_string(text).render(**names)
    except TemplateError as exc:
        raise RecipeError(path, getattr(exc, "lineno", None), f"Jinja: {exc}") from None
    kept = []
    for line in rendered.splitlines():
        match = _SELECTOR.match(line)
        if match:
            try:
                keep = evaluate_selector(match["expr"], names)
            except (ValueError, SyntaxError) as exc:
                raise RecipeError(path, None, f"selector [{match['expr']}]: {exc}") from None
            line = match["body"] if keep else ""  # blank, so line numbers stay the file's
        kept.append(line)
    try:
        data = YAML(typ="safe").load("\n".join(kept))
    except YAMLError as exc:
        raise RecipeError(path, _yaml_error_line(exc), f"YAML: {str(exc).splitlines()[0]}") \
            from None
    if not isinstance(data, dict):
        raise RecipeError(path, 1, "not a mapping")
    return data


def _render_v1(value: object, context: dict, names: dict, path: Path) -> object:
    """Render ``${{ }}`` and resolve ``if/then/else`` list items, recursively."""
    from jinja2 import TemplateError

    if isinstance(value, str):
        if "${{" not in value:
            return value
        try:
            return _jinja_env("${{", "}}").from_string(value).render(**names, **context)
        except TemplateError as exc:
            raise RecipeError(path, None, f"expression {value!r}: {exc}") from None
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict) and "if" in item:
                try:
                    chosen = item.get("then") if evaluate_selector(
                        str(item["if"]), {**names, **context}) else item.get("else")
                except (ValueError, SyntaxError) as exc:
                    raise RecipeError(path, None, f"if: {item['if']!r}: {exc}") from None
                if chosen is None:
                    continue
                chosen = chosen if isinstance(chosen, list) else [chosen]
                out.extend(_render_v1(chosen, context, names, path))
            else:
                out.append(_render_v1(item, context, names, path))
        return out
    if isinstance(value, dict):
        return {k: _render_v1(v, context, names, path) for k, v in value.items()}
    return value


def _read_recipe_yaml(path: Path, names: dict[str, object]) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text())
    except YAMLError as exc:
        raise RecipeError(path, _yaml_error_line(exc), f"YAML: {str(exc).splitlines()[0]}") \
            from None
    if not isinstance(data, dict):
        raise RecipeError(path, 1, "not a mapping")
    context: dict = {}
    for key, value in (data.get("context") or {}).items():
        context[key] = _render_v1(value, context, names, path)
    return _render_v1({k: v for k, v in data.items() if k != "context"}, context, names, path)


def _requirements(section: dict | None) -> dict[str, set[str]]:
    section = section or {}
    out = {}
    for key in ("build", "host", "run"):
        out[key] = {n for spec in section.get(key) or () if (n := _name_of(spec))}
    return out


def read_recipe(feedstock: Path, *, python: tuple[int, int] = (3, 13),
                freethreading: bool = False) -> Recipe:
    """Read ``recipe/recipe.yaml`` or ``recipe/meta.yaml`` of a feedstock."""
    names = _selector_names(python, freethreading)
    v1 = feedstock / "recipe" / "recipe.yaml"
    path = v1 if v1.exists() else feedstock / "recipe" / "meta.yaml"
    if not path.exists():
        raise RecipeError(feedstock / "recipe", None, "no recipe.yaml or meta.yaml")
    data = _read_recipe_yaml(path, names) if path == v1 else _read_meta_yaml(path, names)
    top = data.get("package") or data.get("recipe") or {}
    build = data.get("build") or {}
    outputs = data.get("outputs") or []
    name = str(top.get("name") or "")
    if not name:
        raise RecipeError(path, None, "no package (or recipe) name")
    try:
        number = int(build.get("number", 0))
    except (TypeError, ValueError):
        raise RecipeError(path, None, f"build number {build.get('number')!r} is not an integer") \
            from None
    recipe = Recipe(path=path, format=path.name, name=name, version=str(top.get("version", "")),
                    build_number=number, outputs=[])
    sections = [(data.get("requirements"), build, data.get("test") or data.get("tests"),
                 str(top.get("name") or ""))]
    for out in outputs:
        pkg = out.get("package") or {}
        out_name = str(pkg.get("name") or out.get("name") or "")
        sections.append((out.get("requirements"), out.get("build") or {},
                         out.get("test") or out.get("tests"), out_name))
    noarch_values = set()
    for reqs, bld, tests, out_name in sections:
        if out_name and (out_name != name or not outputs):
            recipe.outputs.append(out_name)
        parsed = _requirements(reqs)
        recipe.build |= parsed["build"]
        recipe.host |= parsed["host"]
        recipe.run |= parsed["run"]
        if bld.get("noarch"):
            noarch_values.add(str(bld["noarch"]))
        if bld.get("python_version_independent") or "python-abi3" in parsed["host"]:
            recipe.abi3 = True
        _read_tests(tests, recipe)
    recipe.outputs = list(dict.fromkeys(recipe.outputs)) or [name]
    recipe.compilers = {b.removeprefix("__compiler_") for b in recipe.build
                        if b.startswith("__compiler_")}
    recipe.build = {b for b in recipe.build if not b.startswith("__")}
    if noarch_values == {"python"} and not recipe.compilers:
        recipe.noarch = "python"
    elif noarch_values and len(sections) == 1:
        recipe.noarch = next(iter(noarch_values))
    return recipe


def _read_tests(tests: object, recipe: Recipe) -> None:
    if isinstance(tests, dict):  # meta.yaml
        recipe.imports += [str(i) for i in tests.get("imports") or ()]
        recipe.test |= {n for s in tests.get("requires") or () if (n := _name_of(s))}
    elif isinstance(tests, list):  # recipe.yaml v1
        for test in tests:
            if not isinstance(test, dict):
                continue
            python = test.get("python") or {}
            recipe.imports += [str(i) for i in python.get("imports") or ()]
            reqs = (test.get("requirements") or {}).get("run") or ()
            recipe.test |= {n for s in reqs if (n := _name_of(s))}
