"""Read conda-forge recipes without executing them: ``meta.yaml`` and ``recipe.yaml`` (v1).

``meta.yaml``: Jinja2 rendered in a *sandboxed* environment (no attribute
access to internals, no imports) with conda-build's helper functions stubbed
(``compiler``, ``stdlib``, ``pin_subpackage``, ...), then line selectors
(``# [linux and py>=313]``) evaluated with a small AST evaluator over a fixed
set of names. ``recipe.yaml``: ruamel.yaml, ``context`` variables, ``${{ }}``
expressions rendered by the same sandbox, ``if/then/else`` list items
evaluated the same way. Errors carry the file and line.

Recipes are hostile input. Each feedstock is read in a long-lived worker
process (:class:`_Worker`) that holds a memory limit and is killed and
replaced when one recipe takes longer than its time limit; inside it the
Jinja sandbox bounds ``range``, ``*`` and ``**`` and the rendered size, refuses
``{% include %}`` / ``{% import %}``, and the YAML's alias-expanded size is
counted before anything walks it. Every failure, whatever its cause, becomes
that feedstock's :class:`RecipeError` naming the file and the rule; the
limits are :class:`ftforge.limits.RecipeLimits`.
"""

from __future__ import annotations

import ast
import atexit
import functools
import json
import math
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FtforgeError
from ..limits import RecipeLimits
from ..variants import DEFAULT_SERIES, PYTHON_MIN

__all__ = ["Recipe", "RecipeError", "read_recipe", "read_recipes"]


class RecipeError(FtforgeError):
    """A recipe that cannot be read; ``file`` and ``line`` say where."""

    def __init__(self, file: Path, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {message}", hint="fix the recipe on the feedstock's "
                         "default branch; the bot retries on its next run")
        self.file, self.line, self.detail = file, line, message


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


def evaluate_selector(expr: str, names: dict[str, object], *,
                      limits: RecipeLimits = RecipeLimits()) -> bool:
    """The selector's truth value; ``ValueError`` names what is wrong with it
    (syntax, a name, a comparison between types that do not compare, its size)."""
    if len(expr) > limits.max_selector_chars:
        raise ValueError(f"longer than {limits.max_selector_chars} characters "
                         "(RecipeLimits.max_selector_chars)")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a selector expression ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise ValueError("nests too deeply to evaluate") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"unsupported selector syntax: {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id not in names:
            raise ValueError(f"unknown selector name '{node.id}'")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (str, int, bool)) \
                or isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and len(node.value) > 100:
            raise ValueError(f"unsupported constant {str(node.value)[:40]!r}")
    try:
        return bool(eval(compile(tree, "<selector>", "eval"), {"__builtins__": {}}, dict(names)))  # noqa: S307 - AST checked above
    except TypeError as exc:  # [linux < 'a'], [py in 3]
        raise ValueError(f"cannot be evaluated ({exc})") from None
    except (RecursionError, MemoryError):
        raise ValueError("nests too deeply to evaluate") from None


class _Compiler(str):
    """``compiler('c')`` renders to a name the graph can recognise."""


class _RuleBroken(Exception):
    """A RecipeLimits rule crossed or a construct refused inside a render."""


def _bounded_env_class():
    """The sandbox, bounded: ``range``, ``*`` and ``**`` cannot build huge values,
    and templates cannot load other templates (no ``include`` / ``import``)."""
    from jinja2 import BaseLoader
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class NoTemplates(BaseLoader):
        def get_source(self, environment, template):
            raise SecurityError(f"'{template}': {{% include %}}, {{% import %}} and "
                                "{% extends %} are not supported (a recipe is one file)")

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})
        limits = RecipeLimits()

        def __init__(self, limits: RecipeLimits, **options) -> None:
            super().__init__(loader=NoTemplates(), **options)
            self.limits = limits

        def call_binop(self, context, operator, left, right):
            cap = self.limits.max_rendered_chars
            if operator == "*":
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(count, int) \
                            and len(seq) * count > cap:
                        raise SecurityError(f"'*' would build {len(seq) * count} items, more "
                                            f"than {cap} (RecipeLimits.max_rendered_chars)")
            if operator == "**" and isinstance(left, int) and isinstance(right, int) \
                    and abs(left) > 1 and right > 0 \
                    and right * math.log2(abs(left)) > 64 * 1024:
                raise SecurityError("'**' would build a number over 64 Kibit "
                                    "(RecipeLimits.max_rendered_chars)")
            return super().call_binop(context, operator, left, right)

    return Bounded


def _bounded_range(limits: RecipeLimits):
    from jinja2.exceptions import SecurityError

    def bounded_range(*args):
        items = range(*args)
        if len(items) > limits.max_loop_items:
            raise SecurityError(f"range() of {len(items)} items, more than "
                                f"{limits.max_loop_items} (RecipeLimits.max_loop_items)")
        return items
    return bounded_range


@functools.cache
def _jinja_env(variable_start: str = "{{", variable_end: str = "}}",
               limits: RecipeLimits = RecipeLimits()):
    """One sandbox per delimiter style and limits (immutable, so shared by every render)."""
    env = _bounded_env_class()(limits, variable_start_string=variable_start,
                               variable_end_string=variable_end,
                               keep_trailing_newline=True)
    env.globals.update({
        "range": _bounded_range(limits),
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
    # rattler-build's filter for build strings: "3.13.* *_cp313t" -> "313"
    env.filters["version_to_buildstring"] = (
        lambda v: "".join(str(v).split(" ")[0].split(".")[:2]))
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


def _read_text(path: Path, limits: RecipeLimits) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_recipe_bytes + 1)
    except OSError as exc:
        raise RecipeError(path, None, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limits.max_recipe_bytes:
        raise RecipeError(path, None, f"larger than {limits.max_recipe_bytes} bytes "
                          "(RecipeLimits.max_recipe_bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise RecipeError(path, line, f"not UTF-8 (byte {exc.start}: "
                          f"{data[exc.start:exc.start + 1]!r})") from None


@functools.lru_cache(maxsize=4096)
def _template(env, text: str):
    """Compiled short templates, shared: v1 recipes repeat the same ``${{ name }}``-style
    expressions across feedstocks, and compiling is most of a render's cost."""
    return env.from_string(text)


def _render(template_text: str, env, variables: dict, limits: RecipeLimits) -> str:
    """Render, stopping as soon as the output passes ``max_rendered_chars``."""
    chunks, size = [], 0
    template = _template(env, template_text) if len(template_text) < 256 \
        else env.from_string(template_text)
    for chunk in template.generate(**variables):
        size += len(chunk)
        if size > limits.max_rendered_chars:
            raise _RuleBroken(f"renders to more than {limits.max_rendered_chars} characters "
                              "(RecipeLimits.max_rendered_chars)")
        chunks.append(chunk)
    return "".join(chunks)


def _jinja_failure(path: Path, exc: BaseException, what: str) -> RecipeError:
    if isinstance(exc, RecursionError):
        return RecipeError(path, None, f"{what}: recursion too deep (a recursive macro?)")
    if isinstance(exc, _RuleBroken):
        return RecipeError(path, None, f"{what}: {exc}")
    line = getattr(exc, "lineno", None)
    return RecipeError(path, line, f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


# Errors a template can raise besides TemplateError: jinja2's own range's
# OverflowError, TypeError/ValueError from filters given wrong types, ...
_RENDER_ERRORS = (ArithmeticError, TypeError, ValueError, LookupError, AttributeError,
                  RecursionError, _RuleBroken)


def _load_yaml(text: str, path: Path, limits: RecipeLimits) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise RecipeError(path, _yaml_error_line(exc), f"YAML: {str(exc).splitlines()[0]}") \
            from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
        raise RecipeError(path, None, f"YAML: a value cannot be read ({exc})") from None
    except RecursionError:
        raise RecipeError(path, None, "YAML: nests too deeply to read") from None
    _check_expanded_size(data, path, limits)
    if not isinstance(data, dict):
        raise RecipeError(path, 1, "not a mapping")
    return data


def _check_expanded_size(data: object, path: Path, limits: RecipeLimits) -> None:
    """Count nodes as a reader walking the document would, aliases expanded
    (memoised per object, so a billion-laughs document is counted, not walked);
    refuse a recursive alias or more than ``max_yaml_nodes``."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    cap = limits.max_yaml_nodes

    def size(node: object) -> int:
        if not isinstance(node, (list, dict)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RecipeError(path, None, "YAML: a recursive alias (a node contains itself)")
        active.add(key)
        items = node.values() if isinstance(node, dict) else node
        total = 1 + len(node) if isinstance(node, dict) else 1
        for item in items:
            total += size(item)
            if total > cap:
                break
        active.discard(key)
        sizes[key] = min(total, cap + 1)
        return sizes[key]

    try:
        total = size(data)
    except RecursionError:
        raise RecipeError(path, None, "YAML: nests too deeply to read") from None
    if total > cap:
        raise RecipeError(path, None, f"YAML: more than {cap} nodes once aliases are expanded "
                          "(RecipeLimits.max_yaml_nodes)")


def _read_meta_yaml(path: Path, names: dict[str, object], limits: RecipeLimits) -> dict:
    from jinja2 import TemplateError

    text = _read_text(path, limits)
    try:
        rendered = _render(text, _jinja_env(limits=limits), names, limits)
    except (TemplateError, *_RENDER_ERRORS) as exc:
        raise _jinja_failure(path, exc, "Jinja") from None
    kept = []
    for number, line in enumerate(rendered.splitlines(), start=1):
        match = _SELECTOR.match(line)
        if match:
            try:
                keep = evaluate_selector(match["expr"], names, limits=limits)
            except ValueError as exc:
                raise RecipeError(path, number, f"selector [{match['expr'][:80]}]: {exc}") \
                    from None
            line = match["body"] if keep else ""  # blank, so line numbers stay the file's
        kept.append(line)
    return _load_yaml("\n".join(kept), path, limits)


def _render_v1(value: object, context: dict, names: dict, path: Path,
               limits: RecipeLimits) -> object:
    """Render ``${{ }}`` and resolve ``if/then/else`` list items, recursively."""
    from jinja2 import TemplateError

    if isinstance(value, str):
        if "${{" not in value:
            return value
        try:
            return _render(value, _jinja_env("${{", "}}", limits), {**names, **context}, limits)
        except (TemplateError, *_RENDER_ERRORS) as exc:
            raise _jinja_failure(path, exc, f"expression {value[:80]!r}") from None
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict) and "if" in item:
                try:
                    chosen = item.get("then") if evaluate_selector(
                        str(item["if"]), {**names, **context}, limits=limits) \
                        else item.get("else")
                except ValueError as exc:
                    raise RecipeError(path, None, f"if: {str(item['if'])[:80]!r}: {exc}") \
                        from None
                if chosen is None:
                    continue
                chosen = chosen if isinstance(chosen, list) else [chosen]
                out.extend(_render_v1(chosen, context, names, path, limits))
            else:
                out.append(_render_v1(item, context, names, path, limits))
        return out
    if isinstance(value, dict):
        return {k: _render_v1(v, context, names, path, limits) for k, v in value.items()}
    return value


def _read_recipe_yaml(path: Path, names: dict[str, object], limits: RecipeLimits) -> dict:
    data = _load_yaml(_read_text(path, limits), path, limits)
    raw_context = data.get("context") or {}
    if not isinstance(raw_context, dict):
        raise RecipeError(path, None, f"'context' must be a mapping of names to values, "
                          f"not a {_kind(raw_context)}")
    context: dict = {}
    for key, value in raw_context.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise RecipeError(path, None, f"context key {str(key)[:40]!r} is not a name")
        context[key] = _render_v1(value, context, names, path, limits)
    return _render_v1({k: v for k, v in data.items() if k != "context"}, context, names, path,
                      limits)


def _kind(value: object) -> str:
    return {dict: "mapping", list: "list", str: "string"}.get(type(value), type(value).__name__)


def _mapping(value: object, path: Path, where: str) -> dict:
    """``value`` if it is a mapping (or empty), else the recipe's error naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(path, None, f"'{where}' must be a mapping, not a {_kind(value)}")
    return value


def _sequence(value: object, path: Path, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecipeError(path, None, f"'{where}' must be a list, not a {_kind(value)}")
    return value


def _requirements(section: object, path: Path, where: str) -> dict[str, set[str]]:
    section = _mapping(section, path, where)
    out = {}
    for key in ("build", "host", "run"):
        specs = _sequence(section.get(key), path, f"{where}/{key}")
        out[key] = {n for spec in specs if (n := _name_of(spec))}
    return out


_MAX_BUILD_NUMBER = 2**31 - 1


def _build_number(build: dict, path: Path) -> int:
    raw = build.get("number", 0)
    try:
        number = int(raw) if not isinstance(raw, bool) else -1
    except (TypeError, ValueError, OverflowError):
        number = -1
    if isinstance(raw, float) and not raw.is_integer():
        number = -1
    if not 0 <= number <= _MAX_BUILD_NUMBER:
        raise RecipeError(path, None, f"build number {str(raw)[:40]!r} is not an integer "
                          f"from 0 to {_MAX_BUILD_NUMBER}")
    return number


def read_recipe(feedstock: Path, *, python: tuple[int, int] = (3, 13),
                freethreading: bool = False, limits: RecipeLimits = RecipeLimits(),
                isolated: bool = True) -> Recipe:
    """Read ``recipe/recipe.yaml`` or ``recipe/meta.yaml`` of a feedstock.

    With ``isolated`` (the default) the recipe is read in the worker process that
    holds ``limits.render_seconds`` and ``limits.render_memory_bytes``; any
    failure is this feedstock's :class:`RecipeError`."""
    path = _recipe_path(Path(feedstock))
    if not isolated:
        return _read_in_process(Path(feedstock), path, python, freethreading, limits)
    pool = _pool_for(limits)
    worker = pool.acquire()
    try:
        return worker.read(Path(feedstock), path, python, freethreading)
    finally:
        pool.release(worker)


def read_recipes(feedstocks: Iterable[Path], *, python: tuple[int, int] = (3, 13),
                 freethreading: bool = False, limits: RecipeLimits = RecipeLimits(),
                 workers: int | None = None) -> dict[Path, Recipe | RecipeError]:
    """:func:`read_recipe` for many feedstocks, on up to ``workers`` worker processes at
    once (default: one per CPU, at most 4); each value is the recipe or its error."""
    from concurrent.futures import ThreadPoolExecutor

    feedstocks = [Path(f) for f in feedstocks]
    count = max(1, min(workers or os.cpu_count() or 1, 4, len(feedstocks)))
    _pool_for(limits).grow(count)

    def one(feedstock: Path) -> Recipe | RecipeError:
        try:
            return read_recipe(feedstock, python=python, freethreading=freethreading,
                               limits=limits)
        except RecipeError as exc:
            return exc

    with ThreadPoolExecutor(count) as threads:
        return dict(zip(feedstocks, threads.map(one, feedstocks)))


def _recipe_path(feedstock: Path) -> Path:
    v1 = feedstock / "recipe" / "recipe.yaml"
    path = v1 if v1.exists() else feedstock / "recipe" / "meta.yaml"
    if not path.is_file():
        raise RecipeError(feedstock / "recipe", None, "no recipe.yaml or meta.yaml (as a file)")
    if not path.resolve().is_relative_to(feedstock.resolve()):
        # a checkout can hold links; one to ~/.ssh/id_rsa must not end up in a reason
        raise RecipeError(path, None, "is a link to a file outside the feedstock; refused")
    return path


def _read_in_process(feedstock: Path, path: Path, python: tuple[int, int], freethreading: bool,
                     limits: RecipeLimits) -> Recipe:
    names = _selector_names(python, freethreading)
    v1 = path.name == "recipe.yaml"
    data = _read_recipe_yaml(path, names, limits) if v1 else _read_meta_yaml(path, names, limits)
    top = _mapping(data.get("package") or data.get("recipe"), path, "package")
    build = _mapping(data.get("build"), path, "build")
    outputs = _sequence(data.get("outputs"), path, "outputs")
    name = top.get("name")
    if not name or not isinstance(name, (str, int, float)):
        raise RecipeError(path, None, "no package (or recipe) name")
    name = str(name)
    number = _build_number(build, path)
    recipe = Recipe(path=path, format=path.name, name=name, version=str(top.get("version", "")),
                    build_number=number, outputs=[])
    sections = [(_requirements(data.get("requirements"), path, "requirements"), build,
                 data.get("test") or data.get("tests"), name)]
    for index, out in enumerate(outputs):
        where = f"outputs[{index}]"
        out = _mapping(out, path, where)
        pkg = _mapping(out.get("package"), path, f"{where}/package")
        out_name = str(pkg.get("name") or out.get("name") or "")
        sections.append((_requirements(out.get("requirements"), path, f"{where}/requirements"),
                         _mapping(out.get("build"), path, f"{where}/build"),
                         out.get("test") or out.get("tests"), out_name))
    noarch_values = set()
    for reqs, bld, tests, out_name in sections:
        if out_name and (out_name != name or not outputs):
            recipe.outputs.append(out_name)
        parsed = reqs
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
    def items(value: object) -> list:
        return value if isinstance(value, list) else []

    if isinstance(tests, dict):  # meta.yaml
        recipe.imports += [str(i) for i in items(tests.get("imports"))]
        recipe.test |= {n for s in items(tests.get("requires")) if (n := _name_of(s))}
    elif isinstance(tests, list):  # recipe.yaml v1
        for test in tests:
            if not isinstance(test, dict):
                continue
            python = test.get("python") if isinstance(test.get("python"), dict) else {}
            recipe.imports += [str(i) for i in items(python.get("imports"))]
            reqs = test.get("requirements") if isinstance(test.get("requirements"), dict) else {}
            recipe.test |= {n for s in items(reqs.get("run")) if (n := _name_of(s))}


# ---------------------------------------------------------------------------
# The worker: one long-lived process per limits, JSON lines over pipes (never
# pickle: a process that rendered hostile input is not trusted by the parent).

class _Worker:
    def __init__(self, limits: RecipeLimits) -> None:
        self.limits = limits
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        code = "from ftforge.migrate.recipe_reader import _serve; _serve()"
        env = {**os.environ, "FTFORGE_RECIPE_LIMITS": json.dumps(asdict(self.limits))}
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                stream.close()
            self.proc = None

    def read(self, feedstock: Path, path: Path, python: tuple[int, int],
             freethreading: bool) -> Recipe:
        request = json.dumps({"feedstock": str(feedstock), "path": str(path),
                              "python": list(python), "freethreading": freethreading})
        with self.lock:
            proc = self.proc if self.proc and self.proc.poll() is None else self._start()
            try:
                proc.stdin.write(request.encode() + b"\n")
                proc.stdin.flush()
                line = self._answer(proc)
            except BrokenPipeError:
                line = None
            if line is None:  # died: the memory limit, or a crash of the interpreter
                code = proc.poll()
                self.stop()
                raise RecipeError(path, None, f"reading it stopped the reader process "
                                  f"(exit {code}; RecipeLimits.render_memory_bytes is "
                                  f"{self.limits.render_memory_bytes} bytes)")
            if line == b"":
                self.stop()
                raise RecipeError(path, None, f"reading it took longer than "
                                  f"{self.limits.render_seconds:g} s "
                                  "(RecipeLimits.render_seconds); stopped")
        try:
            answer = json.loads(line)
            if answer.get("error") is not None:
                file, where, message = answer["error"]
                raise RecipeError(Path(file), where, message)
            fields = answer["recipe"]
            return Recipe(**{**fields, "path": Path(fields["path"]),
                             **{k: set(fields[k]) for k in ("build", "host", "run", "test",
                                                            "compilers")}})
        except (ValueError, KeyError, TypeError):
            raise RecipeError(path, None, "the reader process answered nonsense") from None

    def _answer(self, proc: subprocess.Popen) -> bytes | None:
        """One line from the worker; ``b""`` on timeout, ``None`` if it died."""
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.limits.render_seconds
        chunks: list[bytes] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return b""
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                return b"".join(chunks)


class _Pool:
    """Worker processes for one set of limits: one by default, more for read_recipes."""

    def __init__(self, limits: RecipeLimits) -> None:
        self.limits = limits
        self.workers: list[_Worker] = []
        self.free: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.grow(1)

    def grow(self, count: int) -> None:
        with self.lock:
            while len(self.workers) < count:
                worker = _Worker(self.limits)
                self.workers.append(worker)
                self.free.put(worker)

    def acquire(self) -> _Worker:
        return self.free.get()

    def release(self, worker: _Worker) -> None:
        self.free.put(worker)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


_POOLS: dict[RecipeLimits, _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool_for(limits: RecipeLimits) -> _Pool:
    with _POOLS_LOCK:
        if limits not in _POOLS:
            if not _POOLS:
                atexit.register(_stop_workers)
            _POOLS[limits] = _Pool(limits)
        return _POOLS[limits]


def _stop_workers() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.stop()
        _POOLS.clear()


def _serve() -> None:
    """The worker's loop: a request per line on stdin, an answer per line on stdout."""
    import resource

    limits = RecipeLimits(**json.loads(os.environ["FTFORGE_RECIPE_LIMITS"]))
    memory = limits.render_memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    sys.setrecursionlimit(3000)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # nothing else may write to the answer stream
    for line in sys.stdin:
        request = json.loads(line)
        path = Path(request["path"])
        try:
            recipe = _read_in_process(Path(request["feedstock"]), path,
                                      tuple(request["python"]), request["freethreading"], limits)
            fields = asdict(recipe)
            fields["path"] = str(recipe.path)
            for key in ("build", "host", "run", "test", "compilers"):
                fields[key] = sorted(fields[key])
            answer = {"recipe": fields}
        except RecipeError as exc:
            answer = {"error": [str(exc.file), exc.line, exc.detail]}
        except MemoryError:
            answer = {"error": [str(path), None, f"needs more than {memory} bytes of memory "
                                "(RecipeLimits.render_memory_bytes)"]}
        except RecursionError:
            answer = {"error": [str(path), None, "nests too deeply to read (recursion)"]}
        except Exception as exc:  # noqa: BLE001 - any other failure is this feedstock's error
            first = (str(exc).splitlines() or [""])[0][:200]
            answer = {"error": [str(path), None,
                                f"cannot be read ({type(exc).__name__}: {first})"]}
        out.write(json.dumps(answer) + "\n")
        out.flush()
