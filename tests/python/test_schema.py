"""The committed schema and generated C are what the scripts make now."""
import os
import subprocess
import sys

from conftest import ROOT


def test_generated_c_is_fresh():
    result = subprocess.run([os.path.join(ROOT, "scripts", "gen-proto"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_onnx_schema_matches_the_onnx_package():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "onnx-schema-from-descriptors.py")],
                            capture_output=True, text=True, check=True)
    with open(os.path.join(ROOT, "proto", "onnx.proto")) as f:
        assert f.read() == result.stdout
