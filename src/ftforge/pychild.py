"""A fresh Python process running one ftforge function, answering on a pipe of its own.

Used by the audit's worker processes (:mod:`ftforge.channel.audit_pool`) and by
builds (:mod:`ftforge.build.isolated`). The child is ``python -P -c``: it runs
nothing of the caller's (not :mod:`multiprocessing`, whose ``spawn`` runs the
caller's main script again), ``-P`` keeps the current directory off its
``sys.path`` (a ``queue.py`` where the user stands is not imported), and it finds
ftforge where the caller did. Its answers come on a pipe of their own; its stdout
and stderr go to a private temporary file, so nothing a ``sitecustomize`` or an
import prints is mistaken for an answer, and its last line names what went wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["PythonChild", "start"]


@dataclass
class PythonChild:
    process: subprocess.Popen
    answers: IO[bytes]
    """The read end of the child's answer pipe."""
    output: IO[bytes]
    """The child's stdout and stderr (a temporary file)."""

    def last_words(self, limit: int = 200) -> str:
        """The last non-empty line the child printed, at most ``limit`` characters."""
        self.output.seek(0)
        lines = [ln for ln in self.output.read().decode(errors="replace").splitlines()
                 if ln.strip()]
        return lines[-1].strip()[:limit] if lines else ""

    def close_streams(self) -> None:
        for stream in (self.process.stdin, self.answers, self.output):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass


def start(module: str, function: str, *, new_session: bool = False) -> PythonChild:
    """Start ``python -P -c "from MODULE import FUNCTION; FUNCTION(answer_fd)"``
    with a pipe on stdin. ``new_session``: the child leads a process group of its
    own (everything it starts can be ended with ``os.killpg``; a terminal's Ctrl-C
    then reaches only this process, which must end the group itself)."""
    import ftforge

    # ftforge where this process found it goes first unless the child's own
    # sys.path has that directory already (site-packages, an editable install:
    # their order is kept); the rest of this process's sys.path, made absolute,
    # goes last (a relative entry would follow the child's directory; an entry
    # holding os.pathsep could not go through PYTHONPATH)
    first = [str(Path(ftforge.__file__).resolve().parent.parent)]
    last = [os.path.abspath(p) for p in sys.path if p]
    code = ("import sys; "
            f"sys.path[0:0] = [p for p in {first!r} if p not in sys.path]; "
            f"sys.path += [p for p in {last!r} if p not in sys.path]; "
            f"from {module} import {function}; {function}(int(sys.argv[1]))")
    output = tempfile.TemporaryFile()
    try:
        answers, answer_end = os.pipe()
    except BaseException:
        output.close()
        raise
    try:
        process = subprocess.Popen(
            [sys.executable, "-P", "-c", code, str(answer_end)], stdin=subprocess.PIPE,
            stdout=output, stderr=output, pass_fds=(answer_end,),
            start_new_session=new_session)
    except BaseException:
        os.close(answers)
        output.close()
        raise
    finally:
        os.close(answer_end)  # the child holds the write end now
    return PythonChild(process, os.fdopen(answers, "rb"), output)
