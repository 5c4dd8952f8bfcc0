#!/usr/bin/env python3
"""Python reference for scripts/bench/query: the same questions against the same vectors.

Reads what the Rust bench (core/benches/query.rs) wrote into the work dir:

- manifest.json: the model dir (model.onnx, tokenizer.json), the Rust side's embedding.threads
  (how many one-thread sessions it spreads passages over; every Rust session computes on one
  thread), the truncation length, the questions in order, rounds, concurrency and warm-up count;
- vectors-N.npy: the N x dim dense vectors of the Rust index (little-endian f32, unit length).

For every question it does what a minimal Python retrieval service would do:

- embed it like the Rust embedder: tokenizers (tokenizer.json, [CLS] ... [SEP], truncation to
  max_tokens), onnxruntime CPU session (ORT_ENABLE_ALL, intra_op_num_threads = the manifest's
  threads, i.e. embedding.threads used as intra-op threads of one session), mean pooling over the
  attention mask, L2 normalisation;
- brute-force cosine search with numpy: one matrix-vector product over the N x dim matrix (the
  rows are unit length, so the dot product is the cosine), top 10 by argpartition + sort.

numpy's OpenBLAS should run single-threaded (OPENBLAS_NUM_THREADS=1, which scripts/bench/query
sets): a matrix-vector product is memory-bound, and OpenBLAS's own threads, waiting for CPUs
that the session and other askers hold, made it up to 80x slower on 2 busy cores. That is the
reference at its best.

Timed sequentially (rounds passes over the questions, after a warm-up) and with `concurrency`
threads at once sharing the session and the matrix (onnxruntime and numpy release the GIL),
each thread asking its share of rounds x questions in a loop. Percentiles are nearest-rank, as on
the Rust side. Prints one JSON object (and writes it with --out).

--sanity-chunks FILE (the exported chunks) checks that the Python embedder reproduces the Rust
vectors: for N no larger than the pool, row k of vectors-N is pool chunk k * pool // N without
noise; the minimum cosine over the first rows is reported (expected > 0.99 with --model-dir
the model the Rust side used; with the published float-compute graph against supportbot's
8-bit-compute one, about 0.97 and above).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

# The model loading is the ingest reference's, so both references embed alike.
from embed_reference import load_session, load_tokenizer


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--work", required=True, type=Path, help="dir with manifest.json and vectors-N.npy")
    p.add_argument("--size", required=True, type=int, help="N: reads vectors-N.npy")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--top-k", type=int, default=0, help="default: the manifest's dense_top_k")
    p.add_argument("--sanity-chunks", type=Path, help="exported chunks (JSONL), to compare embeddings")
    p.add_argument(
        "--model-dir",
        type=Path,
        help="model to embed the questions with (default: the manifest's, the one the Rust side used)",
    )
    return p.parse_args()


class Reference:
    def __init__(self, tok: Tokenizer, session: ort.InferenceSession, matrix: np.ndarray, top_k: int):
        self.tok = tok
        self.session = session
        self.input_names = {i.name for i in session.get_inputs()}
        self.matrix = matrix
        self.top_k = min(top_k, matrix.shape[0])

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def search(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.matrix @ vector
        k = self.top_k
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
        order = top[np.argsort(-scores[top])]
        return order, scores[order]

    def ask(self, question: str) -> tuple[float, float, float]:
        """(total, embed, search) milliseconds of one question."""
        t0 = time.perf_counter()
        v = self.embed([question])[0]
        t1 = time.perf_counter()
        self.search(v)
        t2 = time.perf_counter()
        return (t2 - t0) * 1000.0, (t1 - t0) * 1000.0, (t2 - t1) * 1000.0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields))


def load1() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CpuWatch:
    """How many CPUs' worth of time other processes used during a timed pass."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.busy = busy_ticks()
        t = os.times()
        self.own = t.user + t.system
        self.load1 = load1()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.wall
        busy = (busy_ticks() - self.busy) / CLK_TCK
        t = os.times()
        own = t.user + t.system - self.own
        return {
            "background_cpus": round(max((busy - own) / wall, 0.0), 2),
            "own_cpus": round(own / wall, 2),
            "load1_before": self.load1,
            "load1_after": load1(),
        }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (the same definition as the Rust bench)."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def summary(ms: list[float]) -> dict:
    s = sorted(ms)
    return {
        "p50_ms": round(percentile(s, 50), 3),
        "p95_ms": round(percentile(s, 95), 3),
        "p99_ms": round(percentile(s, 99), 3),
        "mean_ms": round(sum(s) / len(s), 3) if s else float("nan"),
        "max_ms": round(s[-1], 3) if s else float("nan"),
    }


def pass_result(concurrency: int, samples: list[tuple[float, float, float]], wall: float, cpu: dict) -> dict:
    out = {
        "mode": "dense",
        "concurrency": concurrency,
        "requests": len(samples),
        "wall_seconds": round(wall, 3),
        "throughput_qps": round(len(samples) / wall, 2),
    }
    out.update(summary([s[0] for s in samples]))
    out["embed"] = summary([s[1] for s in samples])
    out["index_search"] = summary([s[2] for s in samples])
    out.update(cpu)
    out["latencies_ms"] = [round(s[0], 3) for s in samples]
    return out


def sequential(ref: Reference, questions: list[str], rounds: int, warmup: int) -> dict:
    for q in questions[:warmup]:
        ref.ask(q)
    cpu = CpuWatch()
    t0 = time.perf_counter()
    samples = [ref.ask(q) for _ in range(rounds) for q in questions]
    wall = time.perf_counter() - t0
    return pass_result(1, samples, wall, cpu.stop())


def concurrent(ref: Reference, questions: list[str], rounds: int, concurrency: int, warmup: int) -> dict:
    for q in questions[:warmup]:
        ref.ask(q)
    all_questions = [q for _ in range(rounds) for q in questions]
    # Request i goes to thread i % concurrency, as on the Rust side.
    shares = [s for s in (all_questions[t::concurrency] for t in range(concurrency)) if s]
    barrier = threading.Barrier(len(shares))

    def worker(share: list[str]) -> list[tuple[float, float, float]]:
        barrier.wait()
        return [ref.ask(q) for q in share]

    cpu = CpuWatch()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(shares)) as pool:
        results = list(pool.map(worker, shares))
    wall = time.perf_counter() - t0
    samples = [s for r in results for s in r]
    return pass_result(len(shares), samples, wall, cpu.stop())


def sanity(ref: Reference, chunks_file: Path, pool_chunks: int, n: int, rows: int = 8) -> dict:
    with chunks_file.open(encoding="utf-8") as f:
        pool = [json.loads(line) for line in f if line.strip()]
    # The same pool as the Rust side: non-empty texts, the first pool_chunks of them.
    pool = [c for c in pool if c["embed_text"].strip()][:pool_chunks]
    if n > len(pool):
        return {"checked": 0, "note": "N is larger than the pool: rows carry noise"}
    idx = [k * len(pool) // n for k in range(min(rows, n))]
    v = ref.embed([pool[i]["embed_text"] for i in idx])
    cos = [float(np.dot(v[k], ref.matrix[k])) for k in range(len(idx))]
    return {"checked": len(idx), "min_cosine_to_rust": round(min(cos), 5)}


def main() -> int:
    a = parse_args()
    manifest = json.loads((a.work / "manifest.json").read_text(encoding="utf-8"))
    model_dir = a.model_dir or Path(manifest["model_dir"])
    questions = manifest["questions"]
    top_k = a.top_k or manifest.get("dense_top_k", 10)
    warmup = manifest.get("warmup", 8)

    t0 = time.perf_counter()
    matrix = np.load(a.work / f"vectors-{a.size}.npy")
    load_vectors = time.perf_counter() - t0
    if matrix.dtype != np.float32 or matrix.shape[1] != manifest["dimension"]:
        print(f"query_reference: unexpected vectors {matrix.dtype} {matrix.shape}", file=sys.stderr)
        return 2
    matrix = np.ascontiguousarray(matrix)
    t0 = time.perf_counter()
    ref = Reference(load_tokenizer(model_dir, manifest["max_tokens"]), load_session(model_dir, manifest["threads"], [], True), matrix, top_k)
    load_model = time.perf_counter() - t0

    out = {
        "side": "python",
        "size": a.size,
        "model_dir": str(model_dir),
        "questions": len(questions),
        "top_k": top_k,
        "threads": manifest["threads"],
        "load_vectors_seconds": round(load_vectors, 3),
        "load_model_seconds": round(load_model, 3),
        "matrix_mb": round(matrix.nbytes / 1e6, 1),
        "versions": {
            "python": sys.version.split()[0],
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "tokenizers": __import__("tokenizers").__version__,
        },
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "(default)"),
    }
    if a.sanity_chunks:
        out["sanity"] = sanity(ref, a.sanity_chunks, manifest["pool_chunks"], a.size)
    seq = sequential(ref, questions, manifest["rounds"], warmup)
    brief("sequential", a.size, seq)
    conc = concurrent(ref, questions, manifest["concurrent_rounds"], manifest["concurrency"], warmup)
    brief(f"x{manifest['concurrency']}", a.size, conc)
    out["passes"] = [seq, conc]
    text = json.dumps(out)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


def brief(label: str, n: int, p: dict) -> None:
    print(
        f"query_reference: N={n} python dense {label:<10}: p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f} ms, "
        f"p99 {p['p99_ms']:.1f} ms, {p['throughput_qps']:.1f} q/s (background CPUs {p['background_cpus']})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
