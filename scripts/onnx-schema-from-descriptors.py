#!/usr/bin/env python3
"""Write amct-pipe's own proto2 schema of the ONNX model format from the descriptors that the
`onnx` Python package carries (field numbers, labels, types, defaults, packed options, oneofs).

    python scripts/onnx-schema-from-descriptors.py > proto/onnx.proto

The schema is written once and committed; `scripts/gen-proto` compiles it with protoc-c.
Only the facts of the published format are taken (names, numbers, types); no text of onnx.proto.
"""
import sys

from google.protobuf import descriptor as D
from onnx import onnx_ml_pb2

SCALAR = {
    D.FieldDescriptor.TYPE_DOUBLE: "double", D.FieldDescriptor.TYPE_FLOAT: "float",
    D.FieldDescriptor.TYPE_INT64: "int64", D.FieldDescriptor.TYPE_UINT64: "uint64",
    D.FieldDescriptor.TYPE_INT32: "int32", D.FieldDescriptor.TYPE_FIXED64: "fixed64",
    D.FieldDescriptor.TYPE_FIXED32: "fixed32", D.FieldDescriptor.TYPE_BOOL: "bool",
    D.FieldDescriptor.TYPE_STRING: "string", D.FieldDescriptor.TYPE_BYTES: "bytes",
    D.FieldDescriptor.TYPE_UINT32: "uint32", D.FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    D.FieldDescriptor.TYPE_SFIXED64: "sfixed64", D.FieldDescriptor.TYPE_SINT32: "sint32",
    D.FieldDescriptor.TYPE_SINT64: "sint64",
}


def type_name(field, scope):
    if field.type in (D.FieldDescriptor.TYPE_MESSAGE, D.FieldDescriptor.TYPE_ENUM):
        target = field.message_type if field.type == D.FieldDescriptor.TYPE_MESSAGE else field.enum_type
        return "." + target.full_name
    return SCALAR[field.type]


def is_repeated(field):
    return getattr(field, "is_repeated", None) if hasattr(field, "is_repeated") else field.label == D.FieldDescriptor.LABEL_REPEATED


def field_line(field, indent, in_oneof):
    options = []
    if field.has_default_value:
        value = field.default_value
        if field.type == D.FieldDescriptor.TYPE_ENUM:
            value = field.enum_type.values_by_number[value].name
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            value = '"' + value + '"'
        options.append(f"default = {value}")
    opts = field.GetOptions()
    if opts.HasField("packed"):
        options.append("packed = " + ("true" if opts.packed else "false"))
    label = "" if in_oneof else ("repeated " if is_repeated(field) else "optional ")
    suffix = (" [" + ", ".join(options) + "]") if options else ""
    return f"{indent}{label}{type_name(field, None)} {field.name} = {field.number}{suffix};"


def write_enum(enum, indent, out):
    out.append(f"{indent}enum {enum.name} {{")
    for v in enum.values:
        out.append(f"{indent}  {v.name} = {v.number};")
    out.append(f"{indent}}}")


def write_message(msg, indent, out):
    out.append(f"{indent}message {msg.name} {{")
    inner = indent + "  "
    for enum in msg.enum_types:
        write_enum(enum, inner, out)
    for nested in msg.nested_types:
        write_message(nested, inner, out)
    oneofs_done = set()
    for field in msg.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            if oneof.name in oneofs_done:
                continue
            oneofs_done.add(oneof.name)
            out.append(f"{inner}oneof {oneof.name} {{")
            for member in oneof.fields:
                out.append(field_line(member, inner + "  ", True))
            out.append(f"{inner}}}")
        else:
            out.append(field_line(field, inner, False))
    out.append(f"{indent}}}")


def main():
    fd = onnx_ml_pb2.DESCRIPTOR
    out = [
        "// amct-pipe's schema of the ONNX model format (proto2), written by",
        "// scripts/onnx-schema-from-descriptors.py from the descriptors of the onnx Python package.",
        "// Field numbers and types are those of the published format, so any ONNX file reads.",
        'syntax = "proto2";',
        f"package {fd.package};",
        "",
    ]
    for enum in fd.enum_types_by_name.values():
        write_enum(enum, "", out)
    for msg in fd.message_types_by_name.values():
        write_message(msg, "", out)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
