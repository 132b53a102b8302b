"""The command line's shape: `amct-pipe --help` lists every command, each command's --help works, and an option that
several commands share (one `@OptionGroup` in Sources/amct-pipe/SharedOptions.swift) reads the same in each."""
import re

import pytest

from conftest import run

COMMANDS = ["compress", "analyze", "retrain", "convert", "inspect", "plan", "run", "ops", "data"]

# Options whose meaning is the same wherever they appear. (--batch-size is not among them: a calibration batch, a
# training step, a batch read; each command says which, with its own default.)
SHARED = ["<input>", "--weights", "--cfg", "--input-shape", "-o, --output", "--format", "--record", "--calib",
          "--json", "--quiet", "--resize", "--crop", "--keep-ratio-pad", "--scale", "--mean", "--std", "--bgr",
          "--layout"]


def entries(help_text):
    """The help's option and argument entries: {name: text}, the name without its value (`--cfg`, `-o, --output`,
    `<input>`), the text with its line breaks undone."""
    found, name = {}, None
    for line in help_text.splitlines():
        start = re.match(r"^  (-\S.*?|<\S+>)(?:\s{2,}(.*))?$", line)
        if start:
            name = re.sub(r" <[^>]+>$", "", start.group(1).strip())
            found[name] = start.group(2) or ""
        elif name and re.match(r"^ {10,}\S", line):
            found[name] = (found[name] + " " + line.strip()).strip()
        else:
            name = None
    return found


def test_root_help_lists_every_command():
    out = run("--help").stdout
    listed = re.findall(r"^  (\w+)(?: \(default\))?\s", out.split("SUBCOMMANDS:")[1].split("\n\n")[0], re.M)
    assert listed == COMMANDS, out
    assert "compress (default)" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    out = run(command, "--help").stdout
    assert out.startswith("OVERVIEW: ") and f"USAGE: amct-pipe {command}" in out, out
    assert "-h, --help" in out


def test_shared_options_read_the_same_everywhere():
    helps = {c: entries(run(c, "--help").stdout) for c in COMMANDS}
    for option in SHARED:
        texts = {c: h[option] for c, h in helps.items() if option in h}
        assert len(texts) >= 2, f"{option} is in {list(texts)} only"
        assert len(set(texts.values())) == 1, f"{option} reads differently: {texts}"
    # every command that reads a model takes it the same way
    assert {c for c, h in helps.items() if "<input>" in h} == set(COMMANDS) - {"ops", "data"}
    assert {c for c, h in helps.items() if "--batch-size" in h} == {"compress", "analyze", "retrain", "run", "data"}


def test_batch_size_is_checked_alike():
    required = {"compress": ["--cfg", "c", "-o", "o"], "analyze": ["--cfg", "c"],
                "retrain": ["--cfg", "c", "--data", "d", "-o", "o"], "run": ["--inputs", "i", "-o", "o"], "data": []}
    for command, args in required.items():
        r = run(command, "x", *args, "--batch-size", "0", check=False)
        assert r.returncode != 0 and "--batch-size must be at least 1 (it is 0)" in r.stderr, (command, r.stderr)
