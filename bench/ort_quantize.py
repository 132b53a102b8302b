"""The Python equivalent of `amct-pipe --calib`: onnxruntime.quantization.quantize_static (QDQ, per-channel, MinMax)
on the same model and the same 8 samples.  python bench/ort_quantize.py in.onnx calib.npz out.onnx"""
import sys

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static


class Reader(CalibrationDataReader):
    def __init__(self, path):
        self.batches = iter([{"input": np.load(path)["input"]}])

    def get_next(self):
        return next(self.batches, None)


quantize_static(sys.argv[1], sys.argv[3], Reader(sys.argv[2]), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
