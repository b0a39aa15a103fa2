"""The build timeline: events stamped by the driver's progress callback, read back into phases."""

from ftforge.build.driver import _LogSink
from ftforge.build.timeline import TIMELINE_FILE, phases, read_timeline


class _Event:
    def __init__(self, message, step_name=""):
        self.message = message
        self.step_name = step_name


class _Reporter:
    def __init__(self):
        self.lines = []

    def step(self, message):
        self.lines.append(("step", message))

    def log(self, line):
        self.lines.append(("log", line))


def test_sink_writes_the_log_unchanged_and_a_timeline_next_to_it(tmp_path):
    log = tmp_path / "build.log"
    reporter = _Reporter()
    sink = _LogSink(reporter, log)
    sink.on_log(_Event("Fetching source from url: file:///x.tar.xz"))
    sink.on_log(_Event("a\tline with a tab\nand a second line"))
    sink.on_build_step(_Event("packaging", step_name="package"))
    sink.close()
    # build.log is rattler-build's text exactly: failure diagnosis reads it line by line
    assert log.read_text() == ("Fetching source from url: file:///x.tar.xz\n"
                               "a\tline with a tab\nand a second line\n")
    events = read_timeline(tmp_path / TIMELINE_FILE)
    assert [(kind, text) for _, kind, text in events] == [
        ("log", "Fetching source from url: file:///x.tar.xz"),
        ("log", "a line with a tab"),
        ("step", "package: packaging"),
    ]
    stamps = [stamp for stamp, _, _ in events]
    assert stamps == sorted(stamps) and stamps[0] >= 0
    assert ("step", "package: packaging") in reporter.lines


def test_phases_charge_the_gap_to_the_phase_the_earlier_line_opened():
    events = [
        (0.5, "log", "Starting build of 1 outputs"),
        (1.0, "log", "Fetching source from url: file:///Python.tar.xz"),
        (4.0, "log", "Copying source from cache: a to b"),
        (9.0, "log", "Resolving host environment:"),
        (10.0, "log", "+ ./configure --prefix=/p"),
        (11.0, "log", "checking for gcc... gcc"),       # continues the script phase
        (126.0, "log", "+ exit 0"),
        (130.0, "log", "Copying done!"),                 # the 4 s before it: collecting files
        (150.0, "log", "Post-processing done!"),
        (152.0, "log", "Compressing archive..."),
        (190.0, "log", "Archive written to '/o/python.conda'"),
        (191.0, "log", "Adding 1 packages to subdir linux-64."),
        (192.0, "driver", "Removing the work directories"),
        (195.0, "driver", "Work directories removed"),
    ]
    got = phases(events)
    assert got == {"start": 1.0, "source": 8.0, "environments": 1.0, "script": 116.0,
                   "post-process": 26.0, "archive": 38.0, "after-archive": 1.0, "index": 1.0,
                   "cleanup": 3.0}
    assert round(sum(got.values()), 3) == 195.0


def test_a_timeline_with_foreign_lines_is_read_without_them(tmp_path):
    path = tmp_path / TIMELINE_FILE
    path.write_text("1.0\tlog\tCompressing archive...\nnot a stamp\tlog\tx\nbroken line\n"
                    "3.5\tlog\tArchive written to 'x'\n")
    events = read_timeline(path)
    assert events == [(1.0, "log", "Compressing archive..."), (3.5, "log", "Archive written to 'x'")]
    assert phases(events) == {"start": 1.0, "archive": 2.5, "after-archive": 0.0}


class _Package:
    name = "o4-fake"


class _Recipe:
    package = _Package()


class _FakeVariant:
    """Stands in for a rendered rattler-build variant: records how the driver builds it."""

    def __init__(self, number, calls):
        self.number = number
        self.variant = {"target_platform": "noarch", "freethreading": "yes"}
        self.recipe = _Recipe()
        self.calls = calls

    def run_build(self, *, tool_config, output_dir, channels, progress_callback, package_format):
        left_over = sorted(p.name for p in (output_dir / "bld").glob("*")) \
            if (output_dir / "bld").is_dir() else []
        self.calls.append((tool_config, package_format, left_over))
        progress_callback.on_log(_Event("Compressing archive..."))
        work = output_dir / "bld" / f"rattler-build_o4_{self.number}" / "work"
        work.mkdir(parents=True)
        (work / "big.o").write_bytes(b"\0" * 4096)
        (output_dir / "noarch").mkdir(exist_ok=True)
        (output_dir / "noarch" / f"o4-fake-1-{self.number}.conda").write_bytes(b"archive")
        progress_callback.on_log(_Event(f"Archive written to 'o4-fake-1-{self.number}.conda'"))


def test_the_driver_packages_at_its_level_and_removes_each_kept_build_folder(tmp_path):
    from ftforge.build.driver import PACKAGE_FORMAT, _build_into_cache

    calls = []
    cache_dir = tmp_path / "builds" / "k"
    _build_into_cache([_FakeVariant(1, calls), _FakeVariant(2, calls)], cache_dir, [], "skip",
                      _Reporter(), "o4-fake")
    assert [package_format for _, package_format, _ in calls] == [PACKAGE_FORMAT] * 2
    assert PACKAGE_FORMAT.startswith("conda:")
    assert all(tool.keep_build for tool, _, _ in calls)  # rattler-build leaves bld/<output> ...
    assert [left for _, _, left in calls] == [[], []]  # ... the driver removes it before the next
    assert not (cache_dir / "bld").exists()
    assert (cache_dir / "noarch" / "o4-fake-1-2.conda").read_bytes() == b"archive"
    got = phases(read_timeline(cache_dir / TIMELINE_FILE))
    assert {"archive", "after-archive", "cleanup"} <= set(got)
