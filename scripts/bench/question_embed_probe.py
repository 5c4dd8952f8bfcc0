#!/usr/bin/env python3
"""Times embedding the evaluation questions in Python with supportbot's question-session settings.

One ONNX Runtime session on one intra-op thread, all graph optimisations, the model's
tokenizer (truncation at 256, no padding), mean pooling and L2 normalisation: what the Rust
embedder does for one question. Each question of tests/fixtures/eval/libreoffice-{en,zh}.jsonl
is embedded twice after 8 warm-up questions; prints nearest-rank p50 / p95 / p99 in ms.

Usage (from the repository root, in scripts/bench/query's venv or any with onnxruntime,
tokenizers and numpy):
    python scripts/bench/question_embed_probe.py MODEL_DIR [--mem-pattern]
"""

import json
import math
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

QUESTIONS = ["tests/fixtures/eval/libreoffice-en.jsonl", "tests/fixtures/eval/libreoffice-zh.jsonl"]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_dir = sys.argv[1]
    mem_pattern = "--mem-pattern" in sys.argv[2:]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.enable_truncation(256)
    tok.no_padding()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.enable_mem_pattern = mem_pattern
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(f"{model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    questions = []
    for path in QUESTIONS:
        with open(path, encoding="utf-8") as f:
            questions += [json.loads(line)["q"] for line in f if line.strip()]

    def embed(q: str) -> np.ndarray:
        e = tok.encode(q)
        ids = np.array([e.ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask], dtype=np.int64)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        v = session.run(None, feed)[0][0].mean(0)
        return v / np.linalg.norm(v)

    for q in questions[:8]:
        embed(q)
    times = []
    for _ in range(2):
        for q in questions:
            start = time.perf_counter()
            embed(q)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()

    def pct(p: float) -> float:
        return times[max(0, math.ceil(len(times) * p) - 1)]

    print(
        f"question embedding, mem_pattern={mem_pattern}, n={len(times)}: "
        f"p50 {pct(0.5):.2f} p95 {pct(0.95):.2f} p99 {pct(0.99):.2f} ms"
    )


if __name__ == "__main__":
    main()
