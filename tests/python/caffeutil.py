"""Caffe nets for the tests: caffe_pb2 messages from proto/caffe.proto (compiled by Debian's protoc into a descriptor
set, so the classes work with any protobuf runtime), a small net builder, and OpenCV's Caffe importer as the reference.
"""
import functools
import os
import subprocess
import tempfile

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def _classes():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "caffe.desc")
        subprocess.run(["protoc", f"--descriptor_set_out={out}", "-I", os.path.join(ROOT, "proto"), "caffe.proto"],
                       check=True)
        files = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in files.file:
        pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
            for name in ("NetParameter", "LayerParameter", "V1LayerParameter", "BlobProto")}


def NetParameter():
    return _classes()["NetParameter"]()


def enum_value(message, enum_type, name):
    return message.DESCRIPTOR.enum_types_by_name[enum_type].values_by_name[name].number


class Net:
    """A NetParameter being built: `add(type, name, bottoms, tops, blobs=[arrays], **params)`; `save(dir)` writes
    deploy.prototxt (no blobs) and model.caffemodel (with blobs)."""

    def __init__(self, input_shape, input_name="data", seed=0):
        self.net = NetParameter()
        self.net.name = "test"
        self.rng = np.random.default_rng(seed)
        layer = self.net.layer.add(name="input", type="Input", top=[input_name])
        layer.input_param.shape.add(dim=list(input_shape))
        self.shapes = {input_name: tuple(input_shape)}
        self.input_name = input_name
        self.input_shape = tuple(input_shape)

    def add(self, type, name, bottoms, tops, blobs=(), text=None):
        layer = self.net.layer.add(name=name, type=type, bottom=list(bottoms), top=list(tops))
        if text:
            text_format.Merge(text, layer)
        for b in blobs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(b.shape)
            blob.data.extend(np.asarray(b, np.float32).ravel().tolist())
        return layer

    def random(self, *shape, scale=0.5):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def save(self, directory, prototxt="deploy.prototxt", caffemodel="model.caffemodel"):
        deploy = NetParameter()
        deploy.CopyFrom(self.net)
        for layer in deploy.layer:
            del layer.blobs[:]
        p, m = os.path.join(directory, prototxt), os.path.join(directory, caffemodel)
        with open(p, "w") as f:
            f.write(text_format.MessageToString(deploy))
        with open(m, "wb") as f:
            f.write(self.net.SerializeToString())
        return p, m


def opencv_forward(prototxt, caffemodel, inputs, outputs):
    """OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe) on the same files: {output name: array}."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for name, value in inputs.items():
        net.setInput(value, name)
    got = net.forward(list(outputs))
    return dict(zip(outputs, got))


def close(got, ref, tol=1e-4):
    """Within tol of the reference's scale."""
    scale = max(1.0, float(np.abs(ref).max()))
    return float(np.abs(np.asarray(got, np.float64) - ref).max()) <= tol * scale
