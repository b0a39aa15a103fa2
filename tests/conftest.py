from __future__ import annotations

import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The suite's Ctrl-C tests send SIGINT to the programs they start: a suite started with
# SIGINT ignored (`nohup scripts/test &` from a script: a non-interactive shell ignores
# SIGINT in what it puts in the background, and Python keeps that) would pass the
# ignore on and fail them. Python's own handler here makes its children start with
# the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def repo() -> Path:
    return REPO
