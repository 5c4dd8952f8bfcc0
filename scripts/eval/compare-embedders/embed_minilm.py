"""Embed passages and questions with all-MiniLM-L6-v2 int8 ONNX: truncation at 256 tokens,
batch padded to its longest input, mean pooling over the attention mask, L2 normalise.
Caches minilm_passages.npy / minilm_questions.npy.
Usage: python embed_minilm.py [--limit N] [--batch N] [--threads N]"""
import os, sys, time, json, argparse
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from common import HERE, embed_sorted, load_chunks, load_questions, peak_rss_mb

ap = argparse.ArgumentParser()
ap.add_argument("--limit", type=int, default=0)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

MD = os.environ["MINILM_DIR"]
tok = Tokenizer.from_file(os.path.join(MD, "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(max_length=256)   # tokenizer.json ships 128; the app uses max_tokens=256
so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
sess = ort.InferenceSession(os.path.join(MD, "model.onnx"), so, providers=["CPUExecutionProvider"])

def mean_pool(h, mask):
    mf = mask[:, :, None].astype(np.float32)
    return (h * mf).sum(1) / np.clip(mf.sum(1), 1e-9, None)

def embed(texts, batch):
    return embed_sorted(sess, tok, texts, batch, mean_pool)

chunks = load_chunks()
qs = load_questions()
ptexts = [c["embed_text"] for c in chunks]
if args.limit:
    ptexts = ptexts[:args.limit]
qtexts = [q["q"] for q in qs]
t0 = time.perf_counter(); P, ptok, ptrunc = embed(ptexts, args.batch); tp = time.perf_counter() - t0
t0 = time.perf_counter(); Q, qtok, _ = embed(qtexts, args.batch); tq = time.perf_counter() - t0
stats = {"model": "all-MiniLM-L6-v2 int8 onnx", "threads": args.threads, "batch": args.batch,
         "n_passages": len(ptexts), "passage_tokens_after_trunc": int(ptok), "passages_truncated": int(ptrunc),
         "passage_seconds": round(tp, 2), "passages_per_s": round(len(ptexts) / tp, 2),
         "passage_tokens_per_s": round(ptok / tp, 1), "question_seconds": round(tq, 2),
         "peak_rss_mb": round(peak_rss_mb(), 1)}
print(json.dumps(stats, indent=1))
if not args.limit:
    np.save(os.path.join(HERE, "minilm_passages.npy"), P)
    np.save(os.path.join(HERE, "minilm_questions.npy"), Q)
    json.dump(stats, open(os.path.join(HERE, "minilm_embed_stats.json"), "w"), indent=1)
