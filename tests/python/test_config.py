"""Configs from the command line: goldens are fresh, `plan` prints the table and stable JSON, bad configs fail
with the file:line:column and a non-zero exit."""
import json
import os
import subprocess
import sys

from conftest import FIXTURES, ROOT, run

CONFIGS = os.path.join(FIXTURES, "configs")


def test_textformat_goldens_are_fresh():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-textformat-goldens.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_plan_json_has_stable_keys():
    args = ("plan", os.path.join(FIXTURES, "residual.onnx"), "--cfg", os.path.join(CONFIGS, "quant.cfg"), "--json")
    out = run(*args).stdout
    assert run(*args).stdout == out  # the same text every run (keys sorted, as every --json)
    data = json.loads(out)
    assert list(data) == sorted(["layers", "warnings", "fakequant_precision_mode", "batch_num"])
    assert data["fakequant_precision_mode"] == "FORCE_FP16_QUANT"
    layer = data["layers"][1]
    assert set(layer) == {"name", "op", "quant", "prune"}
    assert set(layer["quant"]) == {"enabled", "source", "act", "wts"}
    assert set(layer["quant"]["act"]) == {"type", "clip_min", "clip_max", "fixed_min", "init"}
    assert set(layer["quant"]["wts"]) == {"algo", "type", "channel_wise"}
    assert set(layer["prune"]) == {"enabled", "source", "kind", "ratio", "ascend_optimized", "update_freq"}
    assert layer["name"] == "/layer1/layer1.0/conv1/Conv"
    assert layer["quant"] == {"enabled": True, "source": "override_by_name",
                              "act": {"type": "INT8", "clip_min": -3.0, "clip_max": 3.0, "fixed_min": True, "init": "config"},
                              "wts": {"algo": "ARQ", "type": "INT4", "channel_wise": True}}
    assert data["layers"][0]["quant"]["source"] == "skipped_by_name:skip_layers"
    assert data["layers"][5]["quant"]["act"]["clip_max"] == 8.0 and data["warnings"] == []


def test_plan_table_is_one_line_per_layer():
    out = run("plan", os.path.join(FIXTURES, "residual.onnx"), "--cfg", os.path.join(CONFIGS, "compressed1.cfg")).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["LAYER", "OP", "ACTIVATIONS", "WEIGHTS", "QUANT", "FROM", "PRUNE", "PRUNE", "FROM"]
    rows = [l for l in lines if l.startswith("/")]
    assert len(rows) == 6
    # Columns are aligned: every row has its op at the header's OP column.
    col = lines[0].index("OP")
    assert all(r[col:col + 4] in ("Conv", "Gemm") for r in rows)
    assert "6 layers: 5 quantized, 5 pruned" in out


def test_bad_config_fails_with_place(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("retrain_data_quant_config { ulq_quantize { dst_type: INT3 } }\nfoo: 1\n")
    result = run("plan", os.path.join(FIXTURES, "residual.onnx"), "--cfg", cfg, check=False)
    assert result.returncode != 0
    assert f"{cfg}:1:54: 'INT3' is not a value of amct.DataType" in result.stderr
    assert f"{cfg}:2:1: unknown field 'foo'" in result.stderr


def test_unknown_layer_name_names_the_closest(tmp_path):
    cfg = tmp_path / "name.cfg"
    cfg.write_text('retrain_data_quant_config { ulq_quantize { } }\nskip_layers: "layer1.0.conv"\n')
    result = run("plan", os.path.join(FIXTURES, "residual.onnx"), "--cfg", cfg, check=False)
    assert result.returncode != 0
    assert "2:14: skip_layers names 'layer1.0.conv', which matches no quantizable or prunable layer" in result.stderr
    assert "Closest: 'layer1.0.conv1'" in result.stderr or "Closest: 'layer1.0.conv2'" in result.stderr
