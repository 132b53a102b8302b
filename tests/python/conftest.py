import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "fixtures")
sys.path.insert(0, os.path.join(ROOT, "bench"))


def binary(name="amct-pipe"):
    """A product of the Swift build: amct-pipe (AMCT_PIPE overrides its path) or one beside it (custom-pipeline)."""
    main = os.environ.get("AMCT_PIPE") or os.path.join(ROOT, ".build", "debug", "amct-pipe")
    path = main if name == "amct-pipe" else os.path.join(os.path.dirname(main), name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `swift build` (make test does) or set AMCT_PIPE")
    return path


def run(*args, check=True, program="amct-pipe"):
    """Runs amct-pipe (or another product); returns the CompletedProcess (text)."""
    result = subprocess.run([binary(program), *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{program} {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture
def cli():
    return run
