"""The ``ftforge`` command line: a thin typer layer over the library.

All printing, colour and exit codes live here; ``main`` turns every
``FtforgeError`` into a message without a traceback and a non-zero exit.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import FtforgeError
from .recipes import python as python_recipe

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Free-threaded CPython and its ecosystem as conda packages.")
recipe_app = typer.Typer(no_args_is_help=True, help="Generate recipes.")
channel_app = typer.Typer(no_args_is_help=True, help="Publish and inspect the channel.")
app.add_typer(recipe_app, name="recipe")
app.add_typer(channel_app, name="channel")
migrate_app = typer.Typer(no_args_is_help=True,
                          help="Prepare free-threaded rebuilds of feedstocks, in dependency order.")
app.add_typer(migrate_app, name="migrate")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class RichReporter:
    """Shows the current build step and the last log line under a spinner."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None)
        self.current = "starting"

    def step(self, message: str) -> None:  # messages and log lines are text, never markup
        self.current = message
        self.progress.console.print(f"[dim]•[/dim] {escape(message)}", highlight=False)
        self.progress.update(self.task, description=escape(message))

    def log(self, line: str) -> None:
        tail = line.strip().splitlines()[-1][:90] if line.strip() else ""
        if tail:
            self.progress.update(self.task, description=escape(f"{self.current[:60]} · {tail}"))


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=err_console, transient=True)


def _write_or_check(target: Path, files: dict[str, str], *, check: bool, command: str) -> None:
    from .recipes import files as recipe_files

    if check:
        recipe_files.check_files(target, files, command=command)
        console.print(f"[green]up to date[/green] {escape(str(target))}")
        return
    for path in recipe_files.write_files(target, files):
        console.print(f"wrote {escape(str(path))}")


# ---------------------------------------------------------------------------
@recipe_app.command("python")
def recipe_python(
    version: Annotated[str, typer.Argument(help="CPython release, e.g. 3.13.5")],
    output_dir: Annotated[Path, typer.Option(help="where recipe directories go")] = Path("recipes"),
    sha256: Annotated[str | None, typer.Option(help="sha256 of Python-VERSION.tar.xz, "
                                                  "for a release ftforge does not list")] = None,
    build_number: Annotated[int, typer.Option(help="build number")] = 0,
    check: Annotated[bool, typer.Option("--check", help="exit non-zero if the files on disk "
                                        "differ from what would be written")] = False,
) -> None:
    """Write the interpreter recipe (python, python_abi, python-freethreading, python-gil)."""
    name, files = python_recipe.files_for(version, sha256=sha256, build_number=build_number)
    target = output_dir / name
    _write_or_check(target, files, check=check, command=f"ftforge recipe python {version}")


@recipe_app.command("native")
def recipe_native(
    names: Annotated[list[str] | None, typer.Argument(
        help="library recipes (openssl, zlib, ...); none: every one")] = None,
    output_dir: Annotated[Path, typer.Option(help="where recipe directories go")] = Path("recipes"),
    check: Annotated[bool, typer.Option("--check", help="exit non-zero if the files on disk "
                                        "differ from what would be written")] = False,
) -> None:
    """Write the C library recipes a self-contained interpreter links (openssl, zlib, ...)."""
    from .recipes import native

    for name in names or sorted({lib.directory for lib in native.LIBRARIES}):
        directory, files = native.files_for(name)
        _write_or_check(output_dir / directory, files, check=check,
                        command=f"ftforge recipe native {directory}")


def _name_mapping(text: str) -> tuple[str, str]:
    """``--map PYPI=CONDA`` (its own message; this is not ``--variant``)."""
    pypi_name, sep, conda = (part.strip() for part in text.partition("="))
    if not sep or not pypi_name or not conda:
        raise FtforgeError(f"--map '{text}' is not PYPI=CONDA",
                           hint="for example --map PyYAML=pyyaml")
    return pypi_name, conda


@recipe_app.command("pypi")
def recipe_pypi(
    spec: Annotated[str, typer.Argument(help="NAME, NAME==VERSION, or a local sdist path")],
    output_dir: Annotated[Path, typer.Option(help="where recipe directories go")] = Path("recipes"),
    fmt: Annotated[str, typer.Option("--format", help="recipe.yaml (v1) or meta.yaml")] = "recipe.yaml",
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="PYPI=CONDA name mapping for a dependency (repeatable)")] = None,
    gil_reenabled_ok: Annotated[str | None, typer.Option(
        help="reason the free-threaded build may re-enable the GIL")] = None,
    apt: Annotated[list[str] | None, typer.Option(
        "--apt", help="Debian package the build links (e.g. libyaml-dev), checked before "
        "building (repeatable)")] = None,
    with_deps: Annotated[bool, typer.Option(
        "--with-deps", help="also write recipes for every host/run requirement")] = False,
    check: Annotated[bool, typer.Option("--check", help="exit non-zero on drift")] = False,
    strict_names: Annotated[bool, typer.Option(
        "--strict-names", help="refuse dependencies with no known conda name (default: use "
        "the PyPI name, marked as assumed in the recipe)")] = False,
    pure_build_ok: Annotated[str | None, typer.Option(
        help="reason the package may ship no extension module although its build declares "
        "some")] = None,
) -> None:
    """Write a recipe for a PyPI sdist, built per python ABI (free-threaded aware)."""
    from .recipes import files as recipe_files
    from .recipes.from_pypi import RECIPE_FORMATS, recipe_from_pypi

    if fmt not in RECIPE_FORMATS:
        raise FtforgeError(f"--format {fmt}: expected {' or '.join(RECIPE_FORMATS)}")
    names = dict(_name_mapping(m) for m in map_ or [])
    if with_deps:
        from .recipes.from_pypi import RootOptions, closure_from_pypi

        root = RootOptions(gil_reenabled_ok=gil_reenabled_ok, pure_build_ok=pure_build_ok,
                           apt=tuple(apt or ()))
        with _progress() as progress:
            progress.add_task(f"resolving the requirement closure of {spec}", total=None)
            planned = closure_from_pypi(spec, names=names, fmt=fmt,  # type: ignore[arg-type]
                                        root=root, strict_names=strict_names)
        targets = [recipe_files.recipe_dir(output_dir, plan.conda_name) for plan, _ in planned]
        console.print("build order:")
        for index, ((plan, files), target) in enumerate(zip(planned, targets), start=1):
            paths_written = recipe_files.write_files(target, files)
            console.print(f"  {index:2}. {plan.conda_name} {plan.version}  -> {paths_written[0].parent}")
        return
    name, files = recipe_from_pypi(spec, fmt=fmt, names=names,  # type: ignore[arg-type]
                                   gil_reenabled_ok=gil_reenabled_ok, apt=tuple(apt or ()),
                                   strict_names=strict_names, pure_build_ok=pure_build_ok)
    target = recipe_files.recipe_dir(output_dir, name)
    _write_or_check(target, files, check=check, command=f"ftforge recipe pypi {spec}")


@recipe_app.command("config")
def recipe_config(
    output_dir: Annotated[Path, typer.Option(help="repository root")] = Path("."),
    check: Annotated[bool, typer.Option("--check", help="exit non-zero on drift")] = False,
) -> None:
    """Write the root conda_build_config.yaml (python x is_freethreading, conda-forge keys)."""
    from .recipes import build_config

    files = build_config.generate()
    _write_or_check(output_dir, files, check=check, command="ftforge recipe config")


@app.command()
def build(
    recipe_dirs: Annotated[list[Path], typer.Argument(
        help="directories holding recipe.yaml, built in the order given")],
    output_dir: Annotated[Path, typer.Option(help="where packages are written")] = Path("output"),
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="KEY=VALUE, pins one variant key (repeatable)")] = None,
    variant_config: Annotated[list[Path] | None, typer.Option(
        "--variant-config", "-m",
        help="variant file; default: the nearest conda_build_config.yaml above the recipe")] = None,
    channel: Annotated[list[str] | None, typer.Option(
        "--channel", "-c", help="channel for build/host/test dependencies (repeatable)")] = None,
    test: Annotated[str, typer.Option(help="run the recipe's tests: native|skip")] = "native",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild even if cached")] = False,
    variant_jobs: Annotated[int | None, typer.Option(
        "--variant-jobs", min=1, help="variants of a recipe built at once; default: "
        "$FTFORGE_VARIANT_JOBS, else 2 with two usable CPUs and 8 GiB of memory available, "
        "else 1")] = None,
) -> None:
    """Build every variant of each recipe with py-rattler-build, offline.

    With several recipes, each is built with the packages built before it available.
    """
    from .build.driver import BuildRequest, build_in_order
    from .build.variant_config import parse_override

    if test not in ("native", "skip"):
        raise FtforgeError(f"--test {test}: expected native or skip")
    overrides = tuple(parse_override(v) for v in variant or [])
    requests = [BuildRequest(d, output_dir, overrides, tuple(variant_config or []),
                             test=test, use_cache=not no_cache,  # type: ignore[arg-type]
                             channels=tuple(channel or []), variant_jobs=variant_jobs)
                for d in recipe_dirs]
    with _progress() as progress:
        outcomes = build_in_order(requests, reporter=RichReporter(progress))
    for directory, outcome in zip(recipe_dirs, outcomes):
        state = "cached" if outcome.cached else f"built in {outcome.seconds:.0f}s"
        console.print(f"[green]{state}[/green] {directory} (recipe hash {outcome.cache_key})")
        for pkg in outcome.packages:
            console.print(f"  {pkg}")


@channel_app.command("audit")
def channel_audit(
    packages: Annotated[list[Path], typer.Argument(help=".conda / .tar.bz2 files")],
) -> None:
    """Check packages without publishing: archive safety, metadata, ABI."""
    from .channel.audit import audit_packages

    reports = audit_packages(packages)
    for report in reports:
        if report.ok:
            console.print(f"[green]ok[/green] {escape(str(report.path))} "
                          f"({report.members} members)", highlight=False)
        for finding in report.findings:
            console.print(f"[red]refused[/red] {escape(report.path.name)}: "
                          f"{escape(str(finding))}", highlight=False)
    refused = [r for r in reports if not r.ok]
    if refused:
        raise FtforgeError(f"{len(refused)} of {len(reports)} package(s) refused by the audit",
                           hint="fix the recipe and rebuild (bump the build number)")


TokenOpt = Annotated[str | None, typer.Option(
    envvar="FTFORGE_CHANNEL_TOKEN", show_envvar=True,
    help="the recipe's token (printed once by its first publish)")]


@channel_app.command("publish")
def channel_publish(
    packages: Annotated[list[Path], typer.Argument(help=".conda / .tar.bz2 files")],
    channel: Annotated[Path | None, typer.Option(help="channel directory")] = None,
    s3: Annotated[str | None, typer.Option(help="s3://bucket/channel instead of a directory")] = None,
    recipe: Annotated[str | None, typer.Option(help="the recipe (feedstock) publishing")] = None,
    token: TokenOpt = None,
    by: Annotated[str | None, typer.Option(help="who publishes (recorded)")] = None,
) -> None:
    """Audit packages, move them into a channel and re-index it atomically."""
    if (channel is None) == (s3 is None):
        raise FtforgeError("give exactly one of --channel DIR or --s3 URL")
    with _progress() as progress:
        task = progress.add_task("publishing", total=None)
        say = lambda msg: progress.update(task, description=escape(msg))
        if s3 is not None:
            from .channel.s3 import publish_s3

            result = publish_s3(packages, s3, progress=say)
        else:
            from .channel.publish import publish

            result = publish(packages, channel, recipe=recipe, token=token, by=by, progress=say)
    for path in result.added:
        console.print(f"[green]published[/green] {escape(str(path))}", highlight=False)
    for path in result.unchanged:
        console.print(f"[dim]unchanged[/dim] {escape(str(path))}", highlight=False)
    for name, minted in getattr(result, "tokens", {}).items():
        console.print(f"[bold]token for recipe {escape(name)}[/bold] (shown once; publish and "
                      "remove its packages with --token or FTFORGE_CHANNEL_TOKEN):",
                      highlight=False)
        console.print(f"  token: {minted}", highlight=False, soft_wrap=True)


@channel_app.command("remove")
def channel_remove(
    filenames: Annotated[list[str], typer.Argument(help="package file names")],
    channel: Annotated[Path, typer.Option(help="channel directory")],
    reason: Annotated[str, typer.Option(help="why (recorded in the channel's log)")],
    recipe: Annotated[str | None, typer.Option(help="the recipe that owns the packages")] = None,
    token: TokenOpt = None,
    by: Annotated[str | None, typer.Option(help="who removes (recorded)")] = None,
) -> None:
    """Take packages out of the index (the files are kept, the removal recorded)."""
    from .channel.publish import remove

    result = remove(filenames, channel, reason=reason, by=by, recipe=recipe, token=token)
    for path, kept in zip(result.removed, result.kept_at):
        console.print(f"[yellow]removed[/yellow] {escape(str(path))} (kept at "
                      f"{escape(str(kept))})", highlight=False)


@channel_app.command("check")
def channel_check(
    channels: Annotated[list[Path], typer.Argument(help="channel directories")],
    files: Annotated[bool, typer.Option(help="check that the index agrees with the "
                                        "package files (--no-files: repodata only)")] = True,
    hashes: Annotated[bool, typer.Option("--hashes", help="also compare every package "
                                         "file's sha256 with its record (reads them all)")]
        = False,
) -> None:
    """Prove the no-mixing invariants from repodata (no solving), and that the index
    agrees with the files; list every violation."""
    from .channel.check import check_channels
    from .channel.publish import unfinished_work

    count, violations = check_channels(channels, files=files, hashes=hashes)
    for violation in violations:
        console.print(f"[red]violation[/red] {escape(str(violation))}", highlight=False)
    if violations:
        unfinished = [c for c in channels if unfinished_work(c)]
        raise FtforgeError(
            f"{len(violations)} violation(s) in {count} records",
            hint=(f"a publish or a removal was interrupted in {', '.join(map(str, unfinished))}: "
                  "`ftforge channel reindex CHANNEL` finishes it; then check again"
                  if unfinished else "remove or rebuild the packages named above"))
    console.print(f"[green]ok[/green] {count} records, no violations")


@channel_app.command("reindex")
def channel_reindex(channel: Annotated[Path, typer.Argument(help="channel directory")]) -> None:
    """Finish a crashed publish or removal and re-index."""
    from .channel.publish import recover

    recover(channel)
    console.print(f"[green]indexed[/green] {escape(str(channel))}", highlight=False)


@channel_app.command("serve")
def channel_serve(
    channels: Annotated[list[Path], typer.Argument(help="channel directories")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: any free port)")] = 8000,
) -> None:
    """Serve channels over HTTP on loopback, each under /DIRNAME/ (production: nginx-config)."""
    from .channel.serve import serve_forever

    def announce(line: str) -> None:
        console.print(f"serving {escape(line)}", highlight=False, soft_wrap=True)
        sys.stdout.flush()  # the URLs are for whoever reads a pipe, before the server blocks

    serve_forever(channels, port=port, announce=announce)


@channel_app.command("nginx-config")
def channel_nginx_config(
    channels: Annotated[list[Path], typer.Argument(help="channel directories")],
    port: Annotated[int, typer.Option(help="port nginx listens on")] = 8080,
    prefix: Annotated[str, typer.Option(
        help="URL path the channels are served under, each at PREFIX/DIRNAME/")] = "/",
    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """Print the nginx server block that serves channels in production (each at /DIRNAME/)."""
    from .channel.nginx import channel_urls, server_block

    text = server_block(channels, port=port, url_prefix=prefix)
    if output:
        try:
            output.write_text(text)
        except OSError as exc:
            raise FtforgeError(f"{output}: cannot write ({exc.strerror})",
                               hint="give a writable --output path") from None
        console.print(f"[green]wrote[/green] {escape(str(output))}", highlight=False)
        for url in channel_urls(channels, port=port, url_prefix=prefix).values():
            console.print(f"  serves {escape(url)}", highlight=False)
    else:
        sys.stdout.write(text)


@channel_app.command("push")
def channel_push(
    channel: Annotated[Path, typer.Argument(help="channel directory")],
    oci: Annotated[str, typer.Option(help="REGISTRY/NAMESPACE, e.g. ghcr.io/me/ft")],
    ca_bundle: Annotated[Path | None, typer.Option(help="CA certificates to trust")] = None,
) -> None:
    """Mirror a channel to an OCI registry (incremental: only what the registry lacks)."""
    from .channel.oci import push_channel

    with _progress() as progress:
        task = progress.add_task("pushing", total=None)
        result = push_channel(channel, oci, ca_bundle=str(ca_bundle) if ca_bundle else True,
                              progress=lambda msg: progress.update(task, description=msg))
    console.print(f"[green]pushed[/green] {result.pushed} packages, "
                  f"{result.skipped} already there, repodata for {', '.join(result.subdirs)}")


@app.command()
def create(
    specs: Annotated[list[str], typer.Argument(help="match specs, e.g. python-freethreading")],
    prefix: Annotated[Path, typer.Option("--prefix", "-p", help="environment directory")],
    channel: Annotated[list[str], typer.Option("--channel", "-c", help="URL or directory")],
    channel_priority: Annotated[str, typer.Option(help="strict|flexible|disabled")] = "strict",
    force: Annotated[bool, typer.Option(help="replace an existing prefix")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="solve only")] = False,
    pip: Annotated[bool, typer.Option("--pip/--no-pip",
                                      help="python brings pip, as conda does by default")] = True,
) -> None:
    """Solve and install an environment with py-rattler, as `conda create` would.

    The environment's python_abi is written to conda-meta/pinned."""
    from .environments import CHANNEL_PRIORITIES, solve
    from .environments import create as create_env

    if channel_priority not in CHANNEL_PRIORITIES:
        raise FtforgeError(f"--channel-priority {channel_priority}: expected "
                           f"{' or '.join(CHANNEL_PRIORITIES)}")
    if dry_run:
        solved = solve(channel, specs, priority=channel_priority,  # type: ignore[arg-type]
                       with_pip=pip)
    else:
        solved = create_env(prefix, channel, specs, priority=channel_priority,  # type: ignore[arg-type]
                            force=force, with_pip=pip)
    table = Table("package", "version", "build", "channel")
    for pkg in solved:
        table.add_row(pkg.name, pkg.version, pkg.build, pkg.channel)
    console.print(table)
    if not dry_run:
        console.print(f"[green]created[/green] {prefix}")


@app.command("install")
def install_cmd(
    specs: Annotated[list[str] | None, typer.Argument(help="match specs to add")] = None,
    prefix: Annotated[Path, typer.Option("--prefix", "-p", help="environment directory")] = Path(),
    channel: Annotated[list[str] | None, typer.Option("--channel", "-c")] = None,
    channel_priority: Annotated[str, typer.Option(help="strict|flexible|disabled")] = "strict",
    update_all: Annotated[bool, typer.Option("--update-all", help="update everything")] = False,
    switch_abi: Annotated[bool, typer.Option("--switch-abi",
                                             help="allow changing the interpreter ABI")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="solve only")] = False,
) -> None:
    """Add packages to an environment; its python_abi stays pinned unless --switch-abi."""
    from .environments import CHANNEL_PRIORITIES, install_into

    if channel_priority not in CHANNEL_PRIORITIES:
        raise FtforgeError(f"--channel-priority {channel_priority}: expected "
                           f"{' or '.join(CHANNEL_PRIORITIES)}")
    if not channel:
        raise FtforgeError("no channel given", hint="pass --channel DIR-or-URL (repeatable)")
    result = install_into(prefix, channel, specs or [], priority=channel_priority,  # type: ignore[arg-type]
                          update_all=update_all, switch_abi=switch_abi, dry_run=dry_run)
    table = Table("package", "version", "build", "channel")
    for pkg in result.packages:
        table.add_row(pkg.name, pkg.version, pkg.build, pkg.channel)
    console.print(table)
    if result.pin:
        console.print(f"pinned: {result.pin}")
    console.print(f"python: {' '.join(result.before or ('none',))} -> "
                  f"{' '.join(result.after or ('none',))}")


@app.command("explain")
def explain_cmd(
    specs: Annotated[list[str], typer.Argument(help="the specs that did not solve")],
    channel: Annotated[list[str], typer.Option("--channel", "-c")],
    prefix: Annotated[Path | None, typer.Option("--prefix", "-p",
                                                help="the environment they were for")] = None,
    channel_priority: Annotated[str, typer.Option(help="strict|flexible|disabled")] = "strict",
) -> None:
    """Say why a request cannot be met, in terms of interpreter ABIs."""
    from .environments import environment_python
    from .explain import explain

    lines = explain(specs, channel, environment=environment_python(prefix) if prefix else None,
                    priority=channel_priority)
    if not lines:
        console.print("no interpreter-ABI mismatch found for these specs")
        return
    for line in lines:
        console.print(line, highlight=False)


def _plan(feedstocks: Path, migration: str, channel: list[Path] | None,
          deny: list[str] | None, pypi_wheels: Path | None = None,
          evidence: list[Path] | None = None, pinning: Path | None = None,
          pr_dir: Path | None = None):
    import json

    from .migrate.plan import Migration, plan_migration

    mig = Migration.parse(migration)
    wheels = None
    if pypi_wheels is not None:
        try:
            wheels = json.loads(pypi_wheels.read_text())
        except (OSError, ValueError) as exc:
            raise FtforgeError(f"{pypi_wheels}: not a readable JSON file ({exc})",
                               hint="expected {\"feedstock\": [\"wheel file name\", ...]}") from None
        if not isinstance(wheels, dict) or not all(
                isinstance(v, list) and all(isinstance(w, str) for w in v) for v in wheels.values()):
            raise FtforgeError(f"{pypi_wheels}: expected a JSON object of feedstock names to "
                               "lists of wheel file names",
                               hint="expected {\"feedstock\": [\"wheel file name\", ...]}")
    stress = None
    if evidence:
        from .stress import evidence as stress_evidence

        stress = stress_evidence(evidence)
    return mig, plan_migration(feedstocks, mig, channels=channel or [], denylist=deny or [],
                               pypi_wheels=wheels, stress=stress, pinning=pinning,
                               pr_dir=pr_dir)


def _print_plan(plan) -> None:
    table = Table("feedstock", "category", "reason")
    for name, state in sorted(plan.feedstocks.items(), key=lambda kv: kv[1].category):
        table.add_row(escape(name), state.category, escape(state.reason))
    console.print(table)
    console.print(f"order: {escape(' -> '.join(plan.order))}", highlight=False)
    origin = plan.migration_origin if plan.migration_origin != "ftforge" else (
        f"ftforge's own (use_local: true, migrator_ts {plan.migrator_ts})")
    console.print(f"migration file: {escape(origin)}", highlight=False)


FeedstocksArg = Annotated[Path, typer.Argument(help="directory of feedstock checkouts")]
MigrationOpt = Annotated[str, typer.Option(help="python313t | python314t | python315t")]
ChannelOpt = Annotated[list[Path] | None, typer.Option(
    "--channel", help="channel whose free-threaded builds count as done (run --build: "
    "the first one is published to; all are read for build dependencies)")]
DenyOpt = Annotated[list[str] | None, typer.Option("--deny", help="feedstock never migrated")]
WheelsOpt = Annotated[Path | None, typer.Option(help=escape(
    "JSON {feedstock: [wheel file names on PyPI]}: wheels for the migration's ABI "
    "(cp314t for python314t) count as evidence"))]
PinningOpt = Annotated[Path | None, typer.Option(help=escape(
    "conda-forge pinning checkout [its conda_build_config.yaml and migrations/]: its "
    "migration file is used verbatim and its wait_for_migrators honoured"))]
PrDirOpt = Annotated[Path, typer.Option(help="where PR bodies go")]


@migrate_app.command("plan")
def migrate_plan(feedstocks: FeedstocksArg, migration: MigrationOpt = "python313t",
                 channel: ChannelOpt = None, deny: DenyOpt = None,
                 pypi_wheels: WheelsOpt = None, pinning: PinningOpt = None,
                 evidence: Annotated[list[Path] | None, typer.Option(
                     "--evidence", help="channel whose `ftforge stress` records count as "
                     "evidence (a clean run) or are listed as findings")] = None) -> None:
    """Classify every feedstock (done, ready, awaiting parents, ...) and order them."""
    _mig, plan = _plan(feedstocks, migration, channel, deny, pypi_wheels, evidence,
                       pinning=pinning)
    _print_plan(plan)
    for name, state in sorted(plan.feedstocks.items()):
        for finding in state.findings:
            console.print(f"[yellow]finding[/yellow] {escape(name)}: {escape(finding)}",
                          highlight=False)


@migrate_app.command("run")
def migrate_run(feedstocks: FeedstocksArg, migration: MigrationOpt = "python313t",
                channel: ChannelOpt = None, deny: DenyOpt = None,
                pypi_wheels: WheelsOpt = None, pinning: PinningOpt = None,
                pr_dir: PrDirOpt = Path("migration-prs"),
                build: Annotated[bool, typer.Option(
                    "--build", help="build each migrated feedstock (free-threaded and GIL) "
                    "in plan order, publish to the first --channel and mark it done")] = False,
                output_dir: Annotated[Path, typer.Option(
                    help="where --build writes packages before publishing")] = Path(
                        "migration-builds"),
                ) -> None:
    """Make the migration branch + commit in every ready feedstock (idempotent);
    with --build, build and publish them too, parents before children."""
    from .migrate.run import BuildLoop, run_migration

    mig, plan = _plan(feedstocks, migration, channel, deny, pypi_wheels, pinning=pinning,
                      pr_dir=pr_dir)
    loop = None
    if build:
        if not channel:
            raise FtforgeError("--build needs --channel DIR: the channel to publish to",
                               hint="pass --channel with the channel that holds the interpreter")
        loop = BuildLoop(channel=channel[0], output_dir=output_dir, channels=tuple(channel))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("migrating", total=None)
        result = run_migration(plan, mig, pr_dir=pr_dir, build=loop,
                               progress=lambda msg: progress.update(task,
                                                                    description=escape(msg)))
    for name in result.migrated:
        console.print(f"[green]migrated[/green] {escape(name)} (branch {escape(mig.branch)}, "
                      f"PR body {escape(str(result.pr_bodies[name]))})", highlight=False)
        if name in result.needs_rerender:
            console.print(f"  [yellow]needs a rerender[/yellow]: "
                          f"{escape('; '.join(result.needs_rerender[name]))}", highlight=False)
    for name, packages in result.built.items():
        console.print(f"[green]built and published[/green] {escape(name)}: "
                      f"{len(packages)} package(s)", highlight=False)
    for name, why in result.failed.items():
        console.print(f"[red]build failed[/red] {escape(name)}: {escape(why)}", highlight=False)
    for name, why in result.skipped.items():
        console.print(f"[yellow]skipped[/yellow] {escape(name)}: {escape(why)}")
    if not result.migrated and not result.built:
        console.print("nothing to migrate")
    if result.failed:
        raise FtforgeError(f"{len(result.failed)} feedstock build(s) failed: "
                           f"{', '.join(sorted(result.failed))}; their children wait",
                           hint="the build log named above says why; fix the recipe on the "
                           "migration branch and run again")


@migrate_app.command("status")
def migrate_status(feedstocks: FeedstocksArg, migration: MigrationOpt = "python313t",
                   channel: ChannelOpt = None, deny: DenyOpt = None,
                   pypi_wheels: WheelsOpt = None, pinning: PinningOpt = None,
                   pr_dir: PrDirOpt = Path("migration-prs"),
                   out: Annotated[Path, typer.Option(help="output directory")] = Path("status"),
                   ) -> None:
    """Write the migration status as JSON and a static HTML page."""
    from .migrate.status import write_status

    _mig, plan = _plan(feedstocks, migration, channel, deny, pypi_wheels, pinning=pinning,
                       pr_dir=pr_dir)
    json_path, html_path = write_status(plan, out)
    console.print(f"[green]wrote[/green] {escape(str(json_path))} and "
                  f"{escape(str(html_path))}", highlight=False)


@app.command("stress")
def stress_cmd(
    channel: Annotated[Path, typer.Argument(help="channel directory holding the packages")],
    packages: Annotated[list[str] | None, typer.Argument(
        help="package names (default: every free-threaded build in the channel)")] = None,
    interpreter_channel: Annotated[list[str] | None, typer.Option(
        "--interpreter-channel", "-c",
        help="channel with the interpreter and pip (repeatable), if not CHANNEL itself")] = None,
    threads: Annotated[int, typer.Option(help="threads each test runs in at once")] = 8,
    iterations: Annotated[int, typer.Option(help="runs of each test per thread")] = 10,
    timeout: Annotated[float, typer.Option(help="seconds each pytest run may take")] = 1800.0,
    keep_logs: Annotated[Path | None, typer.Option(
        help="directory to keep each package's pytest log in")] = None,
) -> None:
    """Run packages' own tests under pytest-run-parallel in a free-threaded environment
    and store the record next to each package in the channel."""
    from .stress import StressOptions, stress_channel

    options = StressOptions(threads=threads, iterations=iterations, timeout=timeout)
    if keep_logs is not None:
        keep_logs.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        task = progress.add_task("stress", total=None)
        records = stress_channel(
            channel, packages or (), interpreter_channels=interpreter_channel or (),
            options=options, keep=keep_logs,
            progress=lambda msg: (progress.console.print(f"[dim]•[/dim] {escape(msg)}",
                                                         highlight=False),
                                  progress.update(task, description=escape(msg))))
    table = Table("package", "version", "tests", "passed in parallel", "GIL re-enabled",
                  "seconds", "status")
    for r in records:
        table.add_row(escape(r.package), escape(r.version), str(r.collected),
                      str(r.passed_parallel), "yes" if r.gil_reenabled else "no",
                      f"{r.seconds:.0f}", escape(r.status))
    console.print(table)
    for r in records:
        label = escape(f"{r.package} {r.version} {r.build}")
        for test in r.failed_only_in_parallel:
            console.print(f"[red]failed only in parallel[/red] {label}: {escape(test)}",
                          highlight=False, soft_wrap=True)
        if r.gil_reenabled:
            console.print(f"[yellow]GIL re-enabled[/yellow] {label}: after "
                          f"{escape(r.gil_reenabled_after or 'session start')}",
                          highlight=False, soft_wrap=True)
        if r.note:
            console.print(f"[dim]{escape(r.status)}[/dim] {label}: {escape(r.note)}",
                          highlight=False, soft_wrap=True)


@app.command()
def demo(
    work_dir: Annotated[Path, typer.Option(help="where recipe, channel and env go")] = Path("demo"),
    iterations: Annotated[int, typer.Option(help="workload loop length per thread")] = 3_000_000,
    optimization: Annotated[str, typer.Option(
        help="interpreter build: pgo-lto-bolt (what a channel publishes; the longest "
             "build), pgo-lto (no BOLT), pgo-lto-quick (PGO + LTO, short training task) "
             "or none (-O3 only)")]
        = python_recipe.DEFAULT_OPTIMIZATION,
) -> None:
    """Build free-threaded CPython, publish it, install it, and show threads run in parallel."""
    from .demo import run_demo

    with _progress() as progress:
        result = run_demo(work_dir, reporter=RichReporter(progress), iterations=iterations,
                          optimization=optimization)
    s = result.scaling
    table = Table(title="ftforge demo", show_header=False)
    table.add_row("python-freethreading", f"python {result.python.version} {result.python.build}")
    table.add_row("plain `python`", f"{result.default_python.version} "
                  f"{result.default_python.build} (the GIL build)")
    pip = next((p for p in result.installed if p.name == "pip"), None)
    table.add_row("pip", f"{pip.version} {pip.build}" if pip else "not installed")
    table.add_row("channel", str(result.work_dir / "channel"))
    table.add_row("environment", str(result.work_dir / "env"))
    table.add_row("build", "from cache" if result.build_cached else f"{result.build_seconds:.0f}s")
    table.add_row("interpreter optimization", result.optimization)
    table.add_row("sys._is_gil_enabled()", str(s.gil_enabled))
    table.add_row("Py_GIL_DISABLED", str(s.py_gil_disabled))
    table.add_row("1 thread", f"{s.one_thread_s:.3f}s")
    table.add_row("2 threads (2x work)", f"{s.two_threads_s:.3f}s")
    table.add_row("2-thread speedup", f"{s.speedup:.2f}x")
    console.print(table)
    if s.gil_enabled:
        raise FtforgeError("the installed interpreter reports the GIL enabled",
                           hint="the free-threaded build did not take; see the build log")


_terminated: list[int] = []


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends ftforge as Ctrl-C does (a build's processes, the audit's workers,
    the channel lock and staging are cleaned up), then exits 143."""
    _terminated.append(signum)
    # a second SIGTERM (a supervisor repeating itself) must not cut the clean-up short
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupted() -> None:
    if _terminated:
        err_console.print("terminated")
        sys.exit(128 + signal.SIGTERM)
    err_console.print("aborted")
    sys.exit(130)


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _on_sigterm)
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer returns an Exit's code here (130: Ctrl-C)
            if code == 130:
                _interrupted()
            sys.exit(code)
    except FtforgeError as exc:
        # Messages quote files and recipes ("[build-system]", "[freebsd]"): never markup.
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"  [yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False)
        sys.stdout.flush()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors from typer's click layer carry show() and exit_code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise

if __name__ == "__main__":
    main()
