"""Shared by the compare-embedders scripts: the work directory (chunks, questions, vectors,
reports) is $COMPARE_WORK, set by ./run."""
import json, os
HERE = os.environ["COMPARE_WORK"]

def load_chunks():
    return [json.loads(l) for l in open(os.path.join(HERE, "chunks.jsonl"), encoding="utf-8")]

def load_questions():
    return [json.loads(l) for l in open(os.path.join(HERE, "questions.jsonl"), encoding="utf-8")]

def peak_rss_mb():
    # VmHWM = peak resident set size of this process
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0

def embed_sorted(sess, tok, texts, batch, pool, dim=384):
    """Embeds `texts` in batches taken in order of token count (a batch is padded to its longest
    input): `pool(hidden, mask)` turns the model's token vectors into one per text. Returns the
    L2-normalised vectors (in the order of `texts`) and the number of tokens embedded."""
    import numpy as np
    encs = tok.encode_batch(texts)
    out = np.zeros((len(texts), dim), dtype=np.float32)
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
        v = pool(h, mask)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[idx] = v
    return out, sum(len(e.ids) for e in encs), sum(len(e.overflowing) > 0 for e in encs)
