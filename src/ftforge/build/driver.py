"""Build a recipe directory with py-rattler-build, offline, cached by recipe hash.

The steps, each its own function: refuse an output directory inside a channel,
check the recipe's Debian build dependencies, stage the recipe with its sources
pointed at the local mirror, compose the variant matrix, then either copy the
packages from ``~/.cache/ftforge/builds/<hash>`` or build them there first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ruamel.yaml import YAML

from .. import paths
from ..channel.layout import ensure_not_inside_channel, index_channel
from ..environments import channel_url
from ..errors import BuildFailedError, FtforgeError
from ..recipes import toolchain as toolchain_recipe
from .isolated import (
    BuildJob,
    BuildsStopped,
    ChildBuildFailed,
    run_concurrently,
    run_in_child,
    stop_requested,
    variant_identity,
)
from .mirror import SourceMirror
from .preflight import check_apt_dependencies, dpkg_installed
from .timeline import TIMELINE_FILE, Timeline
from .variant_config import (
    VariantMatrix,
    VariantOverrideError,
    compose,
    expand,
    load_variant_file,
)

__all__ = [
    "BuildOutcome",
    "BuildReporter",
    "BuildRequest",
    "TestStrategy",
    "build",
    "build_in_order",
    "recipe_hash",
    "render",
    "runtime_packages_for",
    "system_toolchain",
]

TestStrategy = Literal["skip", "native"]
CACHE_SCHEMA = "1"
PACKAGE_FORMAT = "conda:12"
"""The .conda format at zstd level 12. rattler-build's default level (15) took 52 CPU
seconds on the interpreter's 242 MiB payload, level 12 took 8 for a package 0.8% larger
(benchmarks/bench_interpreter.py). Not part of the cache key: the level changes the
archive's bytes, not what it installs, so a package cached at another level stays valid
and is reused rather than rebuilt."""
KEEP_BUILD = True
"""rattler-build leaves each output's build folder and the driver removes it right after
that output, timed in the timeline. rattler-build's own clean-up after the interpreter's
output took 44-48 s of wall time (no CPU) in two loaded runs and 2.2 s in a third; the
driver's removal 0.2-2.6 s in every run (benchmarks/bench_interpreter.py)."""


class BuildReporter(Protocol):
    """Where a build reports progress. The library never prints."""

    def step(self, message: str) -> None: ...

    def log(self, line: str) -> None: ...


class _Silent:
    def step(self, message: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass


@dataclass(frozen=True)
class BuildRequest:
    recipe_dir: Path
    output_dir: Path
    overrides: tuple[tuple[str, str], ...] = ()
    variant_files: tuple[Path, ...] = ()
    test: TestStrategy = "native"
    use_cache: bool = True
    channels: tuple[str, ...] = ()
    """Where build/host/test dependencies come from (URLs or directories)."""
    variant_jobs: int | None = None
    """Variants built at once (None: :func:`variant_jobs` decides)."""


@dataclass(frozen=True)
class BuildOutcome:
    packages: list[Path]
    cache_key: str
    cached: bool
    seconds: float
    log_file: Path | None = None
    variants: list[dict[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per driver phase (prepare, rattler-build, copy-out, runtime-packages, index);
    rattler-build's own phases are in ``build.timeline.tsv`` next to the log."""


# ---------------------------------------------------------------------------
# toolchain


def _gcc_version() -> str:
    try:
        out = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise FtforgeError(
            "no working gcc on this machine",
            hint="sudo apt-get install -y build-essential   (or run scripts/setup)",
        ) from None
    return out.stdout.strip()


def system_toolchain() -> toolchain_recipe.Toolchain:
    return toolchain_recipe.Toolchain(gcc_version=_gcc_version(),
                                      glibc_version=toolchain_recipe.build_machine_glibc())


def ensure_toolchain_channel(tc: toolchain_recipe.Toolchain, channel: Path) -> Path:
    """Build the activation packages into ``channel`` once per toolchain identity."""
    from rattler_build import Stage0Recipe, ToolConfiguration, VariantConfig

    stamp = channel / ".ftforge-toolchain"
    if stamp.exists() and stamp.read_text() == tc.identity:
        return channel
    if channel.exists():
        shutil.rmtree(channel)
    with tempfile.TemporaryDirectory(prefix="ftforge-toolchain-") as tmp:
        recipe_path = Path(tmp) / "recipe.yaml"
        recipe_path.write_text(toolchain_recipe.generate(tc)["recipe.yaml"])
        rendered = Stage0Recipe.from_file(recipe_path).render(VariantConfig())
        for variant in rendered:
            variant.run_build(
                tool_config=ToolConfiguration(test_strategy="skip"),
                output_dir=channel, channels=[channel.as_uri()], no_include_recipe=True,
            )
    shutil.rmtree(channel / "bld", ignore_errors=True)
    shutil.rmtree(channel / "src_cache", ignore_errors=True)
    stamp.write_text(tc.identity)
    return channel


# ---------------------------------------------------------------------------
# recipe staging and hashing


def _recipe_files(recipe_dir: Path) -> list[Path]:
    return sorted(p for p in recipe_dir.rglob("*") if p.is_file() and "output" not in p.parts)


def recipe_hash(recipe_dir: Path, identity: str, *, extra: Iterable[str] = ()) -> str:
    """Hash of every recipe file, the rendered variant(s) and the toolchain."""
    digest = hashlib.sha256(f"ftforge-cache-{CACHE_SCHEMA}\n".encode())
    for path in _recipe_files(recipe_dir):
        digest.update(str(path.relative_to(recipe_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(identity.encode() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:20]


def _load_recipe(recipe_dir: Path) -> dict:
    path = recipe_dir / "recipe.yaml"
    if not path.is_file():
        raise FtforgeError(
            f"{recipe_dir}: no recipe.yaml here",
            hint="point ftforge build at a directory holding a v1 recipe.yaml",
        )
    try:
        data = YAML(typ="safe").load(path.read_text())
    except Exception as exc:
        raise FtforgeError(f"{path}: not valid YAML ({exc})", hint="fix the recipe") from None
    if not isinstance(data, dict):
        raise FtforgeError(f"{path}: a recipe must be a YAML mapping")
    return data


def _sources(recipe: dict) -> list[dict]:
    found: list[dict] = []
    for holder in [recipe, *(recipe.get("outputs") or [])]:
        src = holder.get("source") if isinstance(holder, dict) else None
        for entry in src if isinstance(src, list) else [src] if src else []:
            if isinstance(entry, dict) and "url" in entry:
                found.append(entry)
    return found


def _recipe_name(recipe: dict, recipe_dir: Path) -> str:
    block = recipe.get("recipe") or recipe.get("package") or {}
    name = str(block.get("name", recipe_dir.name))
    match = re.fullmatch(r"\$\{\{\s*(\w+)\s*\}\}", name)
    if match:
        name = str((recipe.get("context") or {}).get(match[1], recipe_dir.name))
    return name


def stage_recipe(recipe_dir: Path, stage: Path, mirror: SourceMirror) -> Path:
    """Copy the recipe to ``stage`` with every source URL pointed at the mirror."""
    recipe = _load_recipe(recipe_dir)
    name = _recipe_name(recipe, recipe_dir)
    shutil.copytree(recipe_dir, stage, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("output"))
    text = (stage / "recipe.yaml").read_text()
    for source in _sources(recipe):
        urls = source["url"] if isinstance(source["url"], list) else [source["url"]]
        sha = source.get("sha256")
        for url in urls:
            if "${{" in str(url) or not sha:
                continue
            text = text.replace(str(url), mirror.localize(str(url), str(sha), package=name))
    (stage / "recipe.yaml").write_text(text)
    return stage / "recipe.yaml"


def _apt_dependencies(recipe: dict) -> list[str]:
    extra = recipe.get("extra") or {}
    return list(((extra.get("ftforge") or {}).get("apt_build_dependencies")) or [])


# ---------------------------------------------------------------------------
# rendering and building


def find_build_config(recipe_dir: Path) -> Path | None:
    """The nearest ``conda_build_config.yaml`` above a recipe (the repo's variant matrix)."""
    for parent in list(recipe_dir.resolve().parents)[:3]:
        candidate = parent / "conda_build_config.yaml"
        if candidate.is_file():
            return candidate
    return None


def _matrix(request: BuildRequest, tc: toolchain_recipe.Toolchain | None) -> VariantMatrix:
    matrix = VariantMatrix(tc.variant_config() if tc else {})
    files = request.variant_files
    if not files:
        found = find_build_config(request.recipe_dir)
        files = (found,) if found else ()
    for path in files:
        matrix = matrix.merged(load_variant_file(path))
    own = request.recipe_dir / "variants.yaml"
    if own.is_file():
        own_matrix = load_variant_file(own)
        _check_known_values(own, own_matrix, request.overrides)
        matrix = matrix.merged(own_matrix)
    return compose(matrix, list(request.overrides))


def _check_known_values(own: Path, own_matrix: VariantMatrix,
                        overrides: Iterable[tuple[str, str]]) -> None:
    """The interpreter recipe's keys take only the values its build script knows: a typo
    (``--variant python_optimization=pgo``) is refused here, not after the host
    environment is made and the script runs."""
    from ..recipes.python import VARIANT_VALUES

    for key, value in overrides:
        known = VARIANT_VALUES.get(key)
        if known and key in own_matrix.values and value not in known:
            raise VariantOverrideError(
                f"--variant {key}={value}: {own} takes {', '.join(known)} for {key}",
                hint=f"choose one of: {', '.join(known)}")


def _rattler_variant_config(matrix: VariantMatrix):
    from rattler_build import VariantConfig

    return VariantConfig(dict(matrix.values), zip_keys=matrix.zip_keys or None)


def render(recipe_path: Path, matrix: VariantMatrix, *, shown_as: Path | None = None) -> list:
    """Render with rattler-build (no build); errors become ``FtforgeError`` naming
    ``shown_as`` (the user's file) when ``recipe_path`` is a staged copy of it."""
    from rattler_build import RattlerBuildError, Stage0Recipe

    try:
        return Stage0Recipe.from_file(recipe_path).render(_rattler_variant_config(matrix))
    except RattlerBuildError as exc:
        shown = shown_as or recipe_path
        detail = str(exc).replace(str(recipe_path), str(shown)).replace(
            str(recipe_path.parent), str(shown.parent))
        raise FtforgeError(
            f"{shown}: rattler-build cannot render this recipe: {detail}",
            hint="fix the recipe (or regenerate it with `ftforge recipe`)",
        ) from None


class _LogSink:
    """A rattler-build progress callback that keeps the whole log and forwards lines.

    Next to ``build.log`` it writes ``build.timeline.tsv``: every step and log line
    with the seconds since the build started (``ftforge.build.timeline`` reads it
    into phases). ``build.log`` itself stays exactly rattler-build's text."""

    def __init__(self, reporter: BuildReporter, log_path: Path) -> None:
        self.reporter = reporter
        self.handle = log_path.open("a")
        self.timeline = Timeline(log_path.with_name(TIMELINE_FILE))

    def on_download_start(self, event) -> None:
        self.reporter.step(f"downloading {event.url}")

    def on_download_progress(self, event) -> None:
        pass

    def on_download_complete(self, event) -> None:
        pass

    def on_build_step(self, event) -> None:
        self.timeline.mark("step", f"{event.step_name}: {event.message}")
        self.reporter.step(f"{event.step_name}: {event.message}")

    def on_log(self, event) -> None:
        self.timeline.mark("log", event.message)
        self.handle.write(event.message + "\n")
        self.handle.flush()
        self.reporter.log(event.message)

    def close(self) -> None:
        self.timeline.close()
        self.handle.close()


def _first_line(what: object, limit: int = 160) -> str:
    lines = [line for line in str(what).strip().splitlines() if line.strip()]
    return (lines[0] if lines else "unknown error")[:limit]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


_MISSING_HEADER = re.compile(r"fatal error: ([\w./+-]+\.h(?:pp)?): No such file or directory")


def _missing_header(log: str) -> str | None:
    """The first header a compiler could not find, if that is why the build failed."""
    match = _MISSING_HEADER.search(log)
    return match[1] if match else None


def _failure_excerpt(log: str, lines: int = 6) -> str:
    """The output just before rattler-build's "Script failed" line, where the cause is."""
    text = log.splitlines()
    marker = next((i for i in range(len(text) - 1, -1, -1)
                   if text[i].startswith("Script failed with status")), None)
    if marker is None:
        return ""
    context = [line for line in text[max(0, marker - lines):marker + 1] if line.strip()]
    # A compiler error or a refusal earlier in the log says more than the tail.
    cause = next((line for line in text[:marker]
                  if re.search(r"(^|\s)(error:|#error|RuntimeError:)", line)), None)
    if cause and cause not in context:
        context.insert(0, cause)
    return "\n    " + "\n    ".join(context)


def _collect(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))
    )


def build(
    request: BuildRequest,
    *,
    mirror: SourceMirror | None = None,
    reporter: BuildReporter | None = None,
    installed: Callable[[str], bool] = dpkg_installed,
) -> BuildOutcome:
    """Build every variant of ``request.recipe_dir`` into ``request.output_dir``.

    The matrix is split into single combinations; each is rendered, and the
    rendered variants (only the keys the recipe uses) key the cache. So
    ``--variant freethreading=yes`` and a plain build of both ABIs share entries.
    """
    started = time.monotonic()
    clock = _PhaseClock()
    reporter = reporter or _Silent()
    mirror = mirror or SourceMirror(paths.source_mirror_dir())
    recipe_dir = request.recipe_dir.resolve()
    output_dir = request.output_dir.resolve()
    ensure_not_inside_channel(output_dir, what="build output directory")

    recipe = _load_recipe(recipe_dir)
    name = _recipe_name(recipe, recipe_dir)
    reporter.step(f"{name}: checking system build dependencies")
    check_apt_dependencies(_apt_dependencies(recipe), recipe=str(recipe_dir / "recipe.yaml"),
                           installed=installed)

    jobs = variant_jobs(request)
    tc = system_toolchain()
    matrix = _matrix(request, tc)
    from rattler_build import get_rattler_build_version_py

    extra = [tc.identity, get_rattler_build_version_py(), request.test]
    keys: list[str] = []
    variants: list[dict[str, str]] = []
    planned: list[tuple[str, list, VariantMatrix, tuple[str, ...]]] = []
    native_packages: list[Path] = []
    native_channels: tuple[str, ...] = ()
    with tempfile.TemporaryDirectory(prefix="ftforge-stage-") as tmp:
        staged = stage_recipe(recipe_dir, Path(tmp) / "recipe", mirror)
        seen: set[str] = set()
        for combination in expand(matrix):
            rendered = render(staged, combination, shown_as=recipe_dir / "recipe.yaml")
            identity = _rendered_identity(rendered)
            if not rendered or identity in seen:
                continue
            seen.add(identity)
            built = _native_libraries_for(rendered, request, native_channels, reporter, name)
            if built:  # C libraries no channel had, built into the output directory first
                native_packages += built
                native_channels = (str(output_dir),)
            key = recipe_hash(recipe_dir, identity, extra=extra)
            keys.append(key)
            variants.extend(dict(v.variant) for v in rendered)
            planned.append((key, rendered, combination, native_channels))
        # here, not in a variant's thread: a toolchain build in this process holds the
        # GIL (rattler-build) and nothing else could run, not even Ctrl-C
        with _key_lock(paths.toolchain_channel_dir()):
            channels = [ensure_toolchain_channel(tc, paths.toolchain_channel_dir()).as_uri(),
                        *(channel_url(c) for c in request.channels)]
        labels = _labels([rendered for _, rendered, _, _ in planned])
        tasks = [functools.partial(
            _build_variant, request, name, key, rendered, (staged, combination),
            [*channels, *(channel_url(c) for c in natives)],
            _Labelled(reporter, label) if jobs > 1 and label else reporter)
            for (key, rendered, combination, natives), label in zip(planned, labels)]
        clock.lap("prepare")
        fresh = run_concurrently(tasks, jobs, on_failure=lambda exc: reporter.step(
            f"{name}: a variant failed ({_first_line(getattr(exc, 'message', exc))}); the "
            "others go on, the error follows"))
        clock.lap("rattler-build")
        all_cached = not any(fresh)
    if not keys:
        raise FtforgeError(f"{recipe_dir}: every variant is skipped for this matrix",
                           hint="check the --variant values")
    clock.lap("prepare")
    packages = [p for key in keys for p in _copy_out(paths.builds_dir() / key, output_dir)]
    packages = [*dict.fromkeys(native_packages), *packages]
    clock.lap("copy-out")
    with _key_lock(paths.toolchain_channel_dir()):
        toolchain_channel = ensure_toolchain_channel(tc, paths.toolchain_channel_dir())
        packages += runtime_packages_for(packages, toolchain_channel, output_dir)
    clock.lap("runtime-packages")
    index_channel(output_dir)
    clock.lap("index")
    return BuildOutcome(packages, ",".join(keys), all_cached, time.monotonic() - started,
                        paths.builds_dir() / keys[-1] / "build.log", variants, clock.totals)


class _PhaseClock:
    """Seconds per named phase: ``lap(name)`` charges the time since the last lap to ``name``."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.totals: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.totals[name] = round(self.totals.get(name, 0.0) + now - self.last, 3)
        self.last = now


def _native_libraries_for(rendered: list, request: BuildRequest, native_channels: tuple[str, ...],
                          reporter: BuildReporter, name: str) -> list[Path]:
    """Build the C libraries (``ftforge.recipes.native``) that the rendered variants need
    as host requirements and no given channel has; return their packages."""
    from .stack import build_stack, native_libraries_needed

    hosts = {item.split()[0] for variant in rendered
             for item in (variant.recipe.to_dict().get("requirements") or {}).get("host") or []
             if isinstance(item, str) and item.strip()}
    request.output_dir.mkdir(parents=True, exist_ok=True)
    output = str(request.output_dir.resolve())
    needed = native_libraries_needed(hosts, (*request.channels, *native_channels, output))
    if not needed:
        return []
    reporter.step(f"{name}: building the C libraries it needs first: {', '.join(needed)}")
    return build_stack(request.output_dir, names=needed, reporter=reporter,
                       channels=request.channels).packages


LOCK_POLL_SECONDS = 0.2


@contextlib.contextmanager
def _key_lock(cache_dir: Path):
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.with_name(cache_dir.name + ".lock"), "w") as handle:
        # polled, not blocking: a variant's thread waiting here (another ftforge holds
        # the lock) gives up when the build is interrupted; in the main thread a
        # signal ends the sleep
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop_requested():
                    raise BuildsStopped(f"interrupted waiting for {handle.name}") from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_variant(request: BuildRequest, name: str, key: str, rendered: list,
                   source: tuple[Path, VariantMatrix], dependency_channels: list[str],
                   reporter: BuildReporter) -> bool:
    """Build one combination's rendered variants into the cache entry ``key`` unless it is
    there already; True if it was built."""
    cache_dir = paths.builds_dir() / key
    with _key_lock(cache_dir):  # one builder per recipe hash; others wait, then reuse
        if request.use_cache and (cache_dir / "manifest.json").is_file():
            reporter.step(f"{name}: cached build {key}")
            return False
        _build_into_cache(rendered, cache_dir, dependency_channels, request.test,
                          reporter, name, source=source)
        return True


VARIANT_MEMORY_BYTES = 4 << 30
"""Memory one variant's build may need at its peak: an interpreter's PGO + LTO build
reached 3.7 GB here (the executable's and libpython's LTO links side by side)."""


def _cgroup_file(v2_name: str, v1_controller: str, v1_name: str) -> str | None:
    """A limit of this process's cgroup (v2 unified, else v1's controller), if readable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, group = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            path = Path("/sys/fs/cgroup") / group.lstrip("/") / v2_name
        elif v1_controller in controllers.split(","):
            path = Path("/sys/fs/cgroup") / controllers / group.lstrip("/") / v1_name
        else:
            continue
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


def _available_memory() -> int:
    """MemAvailable, or less if this process's cgroup (a container) allows less."""
    available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    limit = _cgroup_file("memory.max", "memory", "memory.limit_in_bytes")
    used = _cgroup_file("memory.current", "memory", "memory.usage_in_bytes")
    if limit and limit.isdigit() and used and used.isdigit():
        stat = _cgroup_file("memory.stat", "memory", "memory.stat") or ""
        cache = 0  # page cache the kernel can take back, as MemAvailable counts it
        for line in stat.splitlines():
            name, _, number = line.partition(" ")
            if name in ("inactive_file", "total_inactive_file") and number.strip().isdigit():
                cache = int(number)
        available = min(available, max(0, int(limit) - (int(used) - cache)))
    return available


def _usable_cpus() -> int:
    """CPUs this process may run on (affinity), fewer if its cgroup's quota says so."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    # v2: cpu.max is "QUOTA PERIOD" (QUOTA "max": none); v1: cfs_quota_us (-1: none)
    # and the period in a file of its own
    fields = (_cgroup_file("cpu.max", "cpu", "cpu.cfs_quota_us") or "").split()
    if len(fields) == 1:
        fields.append(_cgroup_file("cpu.max", "cpu", "cpu.cfs_period_us") or "")
    if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit() and int(fields[1]) > 0:
        cpus = min(cpus, max(1, int(fields[0]) // int(fields[1])))
    return cpus


class _Labelled:
    """A reporter for one of several variants building at once: its steps and log lines
    say whose they are."""

    def __init__(self, reporter: BuildReporter, label: str) -> None:
        self.reporter, self.label = reporter, label

    def step(self, message: str) -> None:
        self.reporter.step(f"{self.label}: {message}")

    def log(self, line: str) -> None:
        lines = [x for x in line.strip().splitlines() if x.strip()]
        if lines:
            self.reporter.log(f"{self.label}: {lines[-1]}")


def _labels(combinations: list[list]) -> list[str]:
    """For each combination's rendered variants, the variant values that tell it from the
    others (``freethreading=yes``); empty for a single combination."""
    if len(combinations) < 2:
        return [""] * len(combinations)
    values = [{k: v for variant in rendered for k, v in dict(variant.variant).items()}
              for rendered in combinations]  # every output's keys (python_abi uses one)
    keys = sorted({k for v in values for k in v
                   if len({str(w.get(k)) for w in values}) > 1})
    return [", ".join(f"{k}={v.get(k)}" for k in keys) for v in values]


def variant_jobs(request: BuildRequest) -> int:
    """How many of a recipe's variants build at once: ``request.variant_jobs``, else
    ``FTFORGE_VARIANT_JOBS``, else 2 when the machine has two CPUs and memory for two
    builds (:data:`VARIANT_MEMORY_BYTES` each), else 1. A PGO build leaves a CPU idle
    for minutes (the single-process training runs, the serial LTO links): the
    interpreter's two ABIs built side by side take that time back."""
    if request.variant_jobs is not None:
        return max(1, request.variant_jobs)
    value = os.environ.get("FTFORGE_VARIANT_JOBS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise FtforgeError(f"FTFORGE_VARIANT_JOBS={value!r}: expected a whole number >= 1")
        return int(value)
    return max(1, min(2, _usable_cpus(), _available_memory() // VARIANT_MEMORY_BYTES))


def _rendered_identity(rendered: list) -> str:
    return json.dumps(sorted(
        [variant.recipe.package.name, sorted(dict(variant.variant).items())]
        for variant in rendered))


def _build_into_cache(rendered: list, cache_dir: Path, channels: list[str],
                      test: TestStrategy, reporter: BuildReporter, name: str, *,
                      source: tuple[Path, VariantMatrix] | None = None) -> None:
    """Build every rendered variant into ``cache_dir``. With ``source`` (the staged
    recipe and the matrix it was rendered with) each variant is built in a child
    process that Ctrl-C, SIGTERM or an error here ends with everything it started
    (:mod:`ftforge.build.isolated`); without, here (rattler-build's own objects)."""
    from rattler_build import RattlerBuildError, ToolConfiguration

    work = cache_dir.with_name(cache_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_path = work / "build.log"
    sink = _LogSink(reporter, log_path)
    tool = ToolConfiguration(test_strategy=test, keep_build=KEEP_BUILD)
    try:
        for index, variant in enumerate(rendered, start=1):
            label = ", ".join(f"{k}={v}" for k, v in sorted(variant.variant.items())
                              if k != "target_platform")
            reporter.step(f"[{index}/{len(rendered)}] {variant.recipe.package.name} ({label})")
            try:
                if source is not None:
                    run_in_child(BuildJob(
                        recipe=str(source[0]), values=source[1].values,
                        zip_keys=source[1].zip_keys, variant=variant_identity(variant),
                        output_dir=str(work), channels=[work.as_uri(), *channels], test=test,
                        keep_build=KEEP_BUILD, package_format=PACKAGE_FORMAT), sink)
                else:
                    variant.run_build(
                        tool_config=tool, output_dir=work,
                        channels=[work.as_uri(), *channels],
                        progress_callback=sink, package_format=PACKAGE_FORMAT,
                    )
                _remove_build_folders(work, sink)
            except (RattlerBuildError, ChildBuildFailed) as exc:
                sink.handle.flush()
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                from .failure import diagnose

                cause = diagnose(log)
                if cause is not None:
                    raise BuildFailedError(
                        f"{name}: building {variant.recipe.package.name} ({label}) failed: "
                        f"{cause.summary()}", hint=cause.hint(f"{cache_dir}.failed/build.log"),
                    ) from None
                missing = _missing_header(log)
                if missing:
                    raise BuildFailedError(
                        f"{name}: building {variant.recipe.package.name} ({label}) failed: "
                        f"the C header {missing} is not installed",
                        hint=f"install the Debian package that provides it (`apt-file search "
                        f"{missing}`), then declare it in the recipe with `ftforge recipe pypi "
                        f"... --apt PACKAGE`; full log: {cache_dir}.failed/build.log",
                    ) from None
                raise BuildFailedError(
                    f"{name}: building {variant.recipe.package.name} ({label}) failed: "
                    f"{_last_line(str(exc))}{_failure_excerpt(log)}",
                    hint=f"the full log is {cache_dir}.failed/build.log",
                ) from None
    except BaseException:
        sink.close()
        failed = cache_dir.with_name(cache_dir.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        shutil.rmtree(work / "bld", ignore_errors=True)
        work.rename(failed)
        raise
    sink.timeline.mark("driver", "Removing the work directories")
    for scratch in ("bld", "src_cache"):
        shutil.rmtree(work / scratch, ignore_errors=True)
    sink.timeline.mark("driver", "Work directories removed")
    sink.close()
    packages = _collect(work)
    (work / "manifest.json").write_text(json.dumps(
        {"packages": [str(p.relative_to(work)) for p in packages]}, indent=2))
    shutil.rmtree(cache_dir, ignore_errors=True)
    work.rename(cache_dir)


def _remove_build_folders(work: Path, sink: _LogSink) -> None:
    """Remove the build folders rattler-build kept (KEEP_BUILD) once their output is packaged,
    so a recipe with several compiled outputs holds one build tree on disk at a time."""
    bld = work / "bld"
    if not bld.is_dir():
        return
    sink.timeline.mark("driver", "Removing the work directories of the output")
    for folder in bld.iterdir():
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
    sink.timeline.mark("driver", "Work directories removed")


def runtime_packages_for(packages: list[Path], toolchain_channel: Path,
                         output_dir: Path) -> list[Path]:
    """The toolchain's runtime packages (libgcc, libstdcxx) that ``packages`` depend on,
    copied next to them, so that publishing a build's packages publishes what they run on."""
    from rattler.package import IndexJson

    wanted: set[str] = set()
    for pkg in packages:
        for dep in IndexJson.from_package_archive(pkg).depends:
            name = dep.split()[0]
            if name in toolchain_recipe.RUNTIME_PACKAGES:
                wanted.add(name)
    copied: list[Path] = []
    done: set[str] = set()
    while wanted - done:
        name = sorted(wanted - done)[0]
        done.add(name)
        found = [p for p in _collect(toolchain_channel)
                 if IndexJson.from_package_archive(p).name == name]
        if not found:
            raise FtforgeError(
                f"{toolchain_channel}: the toolchain channel has no {name} package",
                hint=f"delete {toolchain_channel} so that the next build remakes it")
        for source in found:
            target = output_dir / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(0o644)
            copied.append(target)
            wanted.update(d.split()[0] for d in IndexJson.from_package_archive(source).depends
                          if d.split()[0] in toolchain_recipe.RUNTIME_PACKAGES)
    return copied


def _copy_out(cache_dir: Path, output_dir: Path) -> list[Path]:
    data = json.loads((cache_dir / "manifest.json").read_text())
    copied = []
    for rel in data["packages"]:
        source = cache_dir / rel
        target = output_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(0o644)
        copied.append(target)
    return copied


def build_in_order(requests: list[BuildRequest], *, reporter: BuildReporter | None = None,
                   mirror: SourceMirror | None = None) -> list[BuildOutcome]:
    """Build recipes one after another; each sees the packages built before it.

    Every request's own output directory is added to the next ones' channels.
    """
    outcomes: list[BuildOutcome] = []
    earlier: list[str] = []
    for request in requests:
        channels = tuple(dict.fromkeys([*request.channels, *earlier]))
        outcome = build(dataclasses.replace(request, channels=channels), reporter=reporter,
                        mirror=mirror)
        outcomes.append(outcome)
        out = str(request.output_dir.resolve())
        if out not in earlier:
            earlier.append(out)
    return outcomes
