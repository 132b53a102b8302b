#!/usr/bin/env python3
"""Writes the golden binary form of every good text-format config, as Python's google.protobuf.text_format parses
it with amct-pipe's own schema (proto/amct_retrain_config.proto, compiled to a descriptor set by protoc-c):

    .venv/bin/python scripts/make-textformat-goldens.py           # write tests/textformat/golden/*.bin
    .venv/bin/python scripts/make-textformat-goldens.py --check   # exit 1 when a golden is stale or missing

The Swift tests parse the same files with amct-pipe's reader and compare the packed bytes to these.
"""
import glob
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "textformat", "golden")
SOURCES = sorted(glob.glob(os.path.join(ROOT, "fixtures", "configs", "*.cfg"))
                 + glob.glob(os.path.join(ROOT, "tests", "textformat", "good", "*.cfg")))


def config_class():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "amct.desc")
        subprocess.run(["protoc-c", f"--descriptor_set_out={out}", f"-I{ROOT}/proto", "amct_retrain_config.proto"], check=True)
        files = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("amct.AMCTRetrainConfig"))


def main():
    check = "--check" in sys.argv
    cls = config_class()
    stale = []
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            data = text_format.Parse(f.read(), cls()).SerializeToString()
        golden = os.path.join(GOLDEN, os.path.basename(path)[:-4] + ".bin")
        if check:
            if not os.path.exists(golden) or open(golden, "rb").read() != data:
                stale.append(golden)
        else:
            with open(golden, "wb") as f:
                f.write(data)
    if stale:
        print("stale goldens (run scripts/make-textformat-goldens.py):", *stale, sep="\n  ")
        sys.exit(1)
    print(f"{len(SOURCES)} goldens {'checked' if check else 'written'}")


if __name__ == "__main__":
    main()
