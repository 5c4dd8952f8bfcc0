#!/usr/bin/env python3
"""Reference embedder for scripts/bench-ingest: all-MiniLM-L6-v2 through Python onnxruntime.

Reads the chunks written by `supportbot-ingest --export-chunks FILE` (JSON lines with
`embed_text` and `tokens`) and embeds every `embed_text` the way the Rust embedder does:

- tokenizer.json from the model dir through `tokenizers`, with its [CLS] ... [SEP] template,
  truncation to --max-tokens (256) and padding to the longest text of each batch (the file's
  own fixed 128-token truncation/padding is replaced, exactly as fastembed does);
- onnxruntime CPU session, graph optimisation level ORT_ENABLE_ALL (fastembed uses Level3, the
  same), `intra_op_num_threads` = --threads, inputs input_ids / attention_mask / token_type_ids
  (int64), output last_hidden_state;
- mean pooling over the attention mask, then L2 normalisation.

Batching: texts are sorted by length before batching, so that padding (every text of a batch is
padded to the longest) wastes little compute. The Rust embedder does the same (it sorts by token
count within each embedding call of >= 512 chunks); the reference sorts all texts by token count
(--order tokens, the default), which is the best a reference can do, so the Rust side is compared
against the reference at its best, not against a handicapped one. --order rust reproduces the Rust
grouping exactly (documents in file order, grouped until >= 512 chunks, sorted by token count
inside each group); --order none keeps file order.

Token count: the sum of the JSONL `tokens` field (model tokens without [CLS]/[SEP]), the same
number the Rust ingest reports as `tokens`. Tokens/s = tokens / (tokenization + inference +
pooling time); reading the file and loading the model are excluded.

Prints one JSON object on stdout. With --sanity it also checks that two paraphrases are closer
(cosine) than unrelated texts, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

# The Rust pipeline embeds documents in groups of at least this many chunks
# (ingest/src/pipeline.rs, GROUP_CHUNKS); used by --order rust.
RUST_GROUP_CHUNKS = 512


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--chunks", required=True, type=Path, help="JSONL from supportbot-ingest --export-chunks")
    p.add_argument("--model-dir", required=True, type=Path, help="dir with model.onnx and tokenizer.json")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra_op_num_threads")
    p.add_argument("--max-tokens", type=int, default=256, help="truncation, including [CLS]/[SEP]")
    p.add_argument(
        "--order",
        choices=["tokens", "rust", "none"],
        default="tokens",
        help="batching order: global sort by token count (default), the Rust grouping, or file order",
    )
    p.add_argument(
        "--config-entry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra onnxruntime session config entry, e.g. session.intra_op.allow_spinning=0",
    )
    p.add_argument("--no-cpu-arena", action="store_true", help="disable the CPU memory arena")
    p.add_argument("--limit", type=int, default=0, help="only the first N chunks (0 = all)")
    p.add_argument("--sanity", action="store_true", help="run the paraphrase sanity check too")
    return p.parse_args()


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships with fixed 128-token truncation and padding; use the embedder's
    # settings instead (fastembed: truncation max_length, padding BatchLongest with [PAD]).
    tok.enable_truncation(max_length=max_tokens)
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tok


def load_session(model_dir: Path, threads: int, entries: list[str], cpu_arena: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = cpu_arena
    for entry in entries:
        key, _, value = entry.partition("=")
        so.add_session_config_entry(key, value)
    return ort.InferenceSession(str(model_dir / "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"])


class Embedder:
    def __init__(self, tok: Tokenizer, session: ort.InferenceSession):
        self.tok = tok
        self.session = session
        self.input_names = {i.name for i in session.get_inputs()}
        self.tokenize_seconds = 0.0
        self.infer_seconds = 0.0
        self.positions = 0  # model positions computed, padding and [CLS]/[SEP] included
        self.real_positions = 0  # the same without padding

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        t1 = time.perf_counter()
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out = pooled / np.clip(norms, 1e-12, None)
        t2 = time.perf_counter()
        self.tokenize_seconds += t1 - t0
        self.infer_seconds += t2 - t1
        self.positions += int(ids.size)
        self.real_positions += int(mask.sum())
        return out


def batches_in_order(rows: list[dict], order: str, batch_size: int) -> list[list[int]]:
    """Indices of rows, cut into batches, in the requested order."""
    idx = list(range(len(rows)))
    if order == "none":
        groups = [idx]
    elif order == "tokens":
        groups = [sorted(idx, key=lambda i: rows[i]["tokens"])]
    else:  # rust: whole documents, in file order, grouped until >= RUST_GROUP_CHUNKS chunks
        groups, cur, prev_doc = [], [], None
        for i in idx:
            doc = (rows[i].get("root"), rows[i].get("citation", "").split("#", 1)[0])
            if doc != prev_doc and len(cur) >= RUST_GROUP_CHUNKS:
                groups.append(cur)
                cur = []
            prev_doc = doc
            cur.append(i)
        if cur:
            groups.append(cur)
        groups = [sorted(g, key=lambda i: rows[i]["tokens"]) for g in groups]
    return [g[k : k + batch_size] for g in groups for k in range(0, len(g), batch_size)]


def sanity(emb: Embedder) -> dict:
    texts = [
        "How do I resize an image?",
        "How can I change the size of a picture?",
        "The train to Lisbon leaves at nine in the morning.",
        "Select the Crop tool and drag a rectangle around the area you want to keep.",
        "To cut away the edges of a photo, use the crop tool and draw the region to keep.",
        "Bananas are a good source of potassium.",
    ]
    v = emb.embed_batch(texts)
    cos = v @ v.T
    result = {
        "norms_ok": bool(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)),
        "paraphrase_1": round(float(cos[0, 1]), 4),
        "unrelated_1": round(float(max(cos[0, 2], cos[1, 2])), 4),
        "paraphrase_2": round(float(cos[3, 4]), 4),
        "unrelated_2": round(float(max(cos[3, 5], cos[4, 5])), 4),
    }
    result["ok"] = bool(
        result["norms_ok"]
        and result["paraphrase_1"] > result["unrelated_1"]
        and result["paraphrase_2"] > result["unrelated_2"]
    )
    return result


def main() -> int:
    a = parse_args()
    with a.chunks.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if a.limit:
        rows = rows[: a.limit]
    if not rows:
        print("embed_reference: no chunks", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    tok = load_tokenizer(a.model_dir, a.max_tokens)
    session = load_session(a.model_dir, a.threads, a.config_entry, not a.no_cpu_arena)
    load_seconds = time.perf_counter() - t0
    emb = Embedder(tok, session)

    batches = batches_in_order(rows, a.order, a.batch_size)
    dim = None
    started = time.perf_counter()
    for b in batches:
        v = emb.embed_batch([rows[i]["embed_text"] for i in b])
        dim = v.shape[1]
    seconds = time.perf_counter() - started

    tokens = sum(int(r["tokens"]) for r in rows)
    # [CLS]/[SEP] are model positions, not counted tokens (as on the Rust side).
    check_tokens = emb.real_positions - 2 * len(rows)
    out = {
        "side": "python",
        "batch_size": a.batch_size,
        "threads": a.threads,
        "order": a.order,
        "config_entries": a.config_entry,
        "cpu_arena": not a.no_cpu_arena,
        "texts": len(rows),
        "tokens": tokens,
        "tokens_recounted": check_tokens,
        "positions": emb.positions,
        "padding_overhead": round(emb.positions / max(emb.real_positions, 1) - 1.0, 4),
        "dimension": dim,
        "load_seconds": round(load_seconds, 3),
        "embed_seconds": round(seconds, 3),
        "tokenize_seconds": round(emb.tokenize_seconds, 3),
        "infer_seconds": round(emb.infer_seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "texts_per_second": round(len(rows) / seconds, 2),
        "maxrss_kb_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "versions": {
            "python": sys.version.split()[0],
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "tokenizers": __import__("tokenizers").__version__,
        },
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "(default)"),
    }
    if a.sanity:
        out["sanity"] = sanity(emb)
    print(json.dumps(out))
    if a.sanity and not out["sanity"]["ok"]:
        print(f"embed_reference: sanity check failed: {out['sanity']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
