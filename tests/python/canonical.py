"""An independent reference of the canonical form every loader ends in (ARCHITECTURE; Sources/Graph/CanonicalForm.swift):
`Constant` nodes with `value`/`value_float(s)`/`value_int(s)` become initializers under their output's name, and an
`Identity` of an initializer is removed, its readers reading the initializer. A Constant or Identity whose output is a
graph output stays, and so does anything reading or writing a graph input's name."""
import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

FOLDED = ("value", "value_float", "value_floats", "value_int", "value_ints")


def constant_tensor(node):
    for a in node.attribute:
        if a.name not in FOLDED:
            continue
        v = helper.get_attribute_value(a)
        if a.name == "value":
            if v.data_type == onnx.TensorProto.STRING:
                return None
            t = copy.deepcopy(v)
        elif a.name in ("value_float", "value_floats"):
            t = numpy_helper.from_array(np.array(v, dtype=np.float32))
        else:
            t = numpy_helper.from_array(np.array(v, dtype=np.int64))
        t.name = node.output[0]
        return t
    return None


def canonical(model):
    m = copy.deepcopy(model)
    g = m.graph
    outputs = {o.name for o in g.output}
    inputs = {i.name for i in g.input}
    initializers = {t.name for t in g.initializer}
    nodes = []
    for n in g.node:
        is_const = n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1
        name = n.output[0] if is_const else None
        t = constant_tensor(n) if is_const and name and name not in outputs | inputs | initializers else None
        if t is None:
            nodes.append(n)
            continue
        g.initializer.append(t)
        initializers.add(name)
    renamed = {}
    kept = []
    for n in nodes:
        inputs_now = [renamed.get(i, i) for i in n.input]
        if (n.op_type == "Identity" and n.domain in ("", "ai.onnx") and len(n.input) == 1 and len(n.output) == 1
                and inputs_now[0] in initializers and inputs_now[0] not in inputs and n.output[0]
                and n.output[0] not in outputs):
            renamed[n.output[0]] = inputs_now[0]
            continue
        kept.append(n)
    for n in kept:
        for k, i in enumerate(n.input):
            if i in renamed:
                n.input[k] = renamed[i]
    del g.node[:]
    g.node.extend(kept)
    vi = [v for v in g.value_info if v.name not in renamed]
    del g.value_info[:]
    g.value_info.extend(vi)
    return m


def initializer_arrays(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
