// Numeric kernels on buffers (quantizers, IFMR, scores, masks, fp16 rounding, executor ops).
// No graph knowledge here: functions take and return buffers and plain values.
