"""Dense-only page-level retrieval evaluation + abstention-threshold analysis.
Usage: python evaluate.py e5 minilm   (reads <model>_passages.npy / <model>_questions.npy)"""
import sys, os, json, math
import numpy as np
from common import HERE, load_chunks, load_questions

chunks = load_chunks()
qs = load_questions()
cits = [c["citation"] for c in chunks]
pages = [c.split("#")[0] for c in cits]
page_list = sorted(set(pages))
page_idx = np.array([page_list.index(p) for p in pages]) if False else None
pid = {p: i for i, p in enumerate(page_list)}
page_of = np.array([pid[p] for p in pages])
assert all("#" not in e for q in qs for e in q.get("expect", [])), "anchor-level expectations need extra handling"

def strip_locale(p):
    return p.split("/", 1)[1]

def rank_pages(scores):
    """page score = best passage cosine; returns (ordered page ids, page scores)"""
    ps = np.full(len(page_list), -np.inf, dtype=np.float64)
    np.maximum.at(ps, page_of, scores.astype(np.float64))
    order = np.argsort(-ps, kind="stable")
    return order, ps

def evaluate(model):
    P = np.load(os.path.join(HERE, f"{model}_passages.npy"))
    Q = np.load(os.path.join(HERE, f"{model}_questions.npy"))
    assert P.shape == (len(chunks), 384) and Q.shape == (len(qs), 384)
    P = P / np.linalg.norm(P, axis=1, keepdims=True)
    Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    S = Q @ P.T
    per_q = []
    for qi, q in enumerate(qs):
        order, ps = rank_pages(S[qi])
        best = float(S[qi].max())
        rec = {"q": q["q"], "lang": q["lang"], "unanswerable": bool(q.get("unanswerable")), "best": best,
               "top5": [page_list[i] for i in order[:5]]}
        if not rec["unanswerable"]:
            exp = set(q["expect"])
            ranked = [page_list[i] for i in order]
            rank = next(r for r, p in enumerate(ranked, 1) if p in exp)
            exp_nl = {strip_locale(e) for e in exp}
            rank_nl = next(r for r, p in enumerate(ranked, 1) if strip_locale(p) in exp_nl)
            rec.update(rank=rank, rank_any_locale=rank_nl)
        per_q.append(rec)
    return per_q

def metrics(recs, key="rank"):
    n = len(recs)
    r = np.array([x[key] for x in recs])
    return {"n": n, "hit@1": round(float((r <= 1).mean()), 4), "hit@5": round(float((r <= 5).mean()), 4),
            "hit@10": round(float((r <= 10).mean()), 4), "MRR": round(float((1.0 / r).mean()), 4),
            "hits@1": int((r <= 1).sum()), "hits@5": int((r <= 5).sum())}

def dist(v):
    v = np.array(v)
    return {"n": len(v), "min": round(float(v.min()), 4), "median": round(float(np.median(v)), 4),
            "max": round(float(v.max()), 4)}

def thresholds(ans, una):
    """abstain when best < t. Feasible t: >= ceil(0.9*|una|) unanswerable abstain, <= floor(0.05*|ans|) answerable abstain."""
    ans = np.sort(np.array(ans)); una = np.sort(np.array(una))
    need_una = math.ceil(0.9 * len(una)); max_ans = math.floor(0.05 * len(ans))
    # to abstain need_una unanswerables, t must exceed the need_una-th smallest unanswerable score
    t_low = una[need_una - 1]             # t > t_low
    # at most max_ans answerables below t -> t <= the (max_ans+1)-th smallest answerable score
    t_high = ans[max_ans]                 # t <= t_high
    out = {"need_unanswerable_abstain": f"{need_una}/{len(una)}", "allow_answerable_abstain": f"{max_ans}/{len(ans)}",
           "t_must_exceed": round(float(t_low), 4), "t_at_most": round(float(t_high), 4),
           "feasible": bool(t_high > t_low)}
    if out["feasible"]:
        t = (t_low + t_high) / 2
        out["example_t_midpoint"] = round(float(t), 4)
        out["at_midpoint"] = {"unanswerable_abstain": f"{int((una < t).sum())}/{len(una)}",
                              "answerable_abstain": f"{int((ans < t).sum())}/{len(ans)}"}
    else:
        # best achievable tradeoffs
        t = t_low + 1e-6
        out["if_t_just_above_t_must_exceed"] = {"unanswerable_abstain": f"{int((una < t).sum())}/{len(una)}",
                                                "answerable_abstain": f"{int((ans < t).sum())}/{len(ans)}",
                                                "answerable_abstain_frac": round(float((ans < t).mean()), 4)}
        t = t_high
        out["if_t_at_most"] = {"unanswerable_abstain": f"{int((una < t).sum())}/{len(una)}",
                               "answerable_abstain": f"{int((ans < t).sum())}/{len(ans)}"}
    return out

report = {}
for model in sys.argv[1:]:
    per_q = evaluate(model)
    json.dump(per_q, open(os.path.join(HERE, f"{model}_per_question.json"), "w"), ensure_ascii=False, indent=1)
    R = {}
    for lang in ("en", "zh"):
        recs = [x for x in per_q if x["lang"] == lang and not x["unanswerable"]]
        R[f"retrieval_{lang}"] = metrics(recs)
        R[f"retrieval_{lang}_locale_agnostic(diagnostic)"] = metrics(recs, "rank_any_locale")
        ans = [x["best"] for x in recs]
        una = [x["best"] for x in per_q if x["lang"] == lang and x["unanswerable"]]
        R[f"best_cos_{lang}"] = {"answerable": dist(ans), "unanswerable": dist(una)}
        R[f"threshold_{lang}"] = thresholds(ans, una)
    recs = [x for x in per_q if not x["unanswerable"]]
    R["retrieval_all"] = metrics(recs)
    ans = [x["best"] for x in recs]; una = [x["best"] for x in per_q if x["unanswerable"]]
    R["best_cos_all"] = {"answerable": dist(ans), "unanswerable": dist(una)}
    R["threshold_all_pooled"] = thresholds(ans, una)
    R["unanswerable_best_scores"] = {l: sorted(round(x["best"], 4) for x in per_q if x["unanswerable"] and x["lang"] == l) for l in ("en", "zh")}
    R["lowest_answerable_best_scores"] = {l: sorted(round(x["best"], 4) for x in per_q if not x["unanswerable"] and x["lang"] == l)[:8] for l in ("en", "zh")}
    report[model] = R
print(json.dumps(report, indent=1, ensure_ascii=False))
json.dump(report, open(os.path.join(HERE, "report_" + "_".join(sys.argv[1:]) + ".json"), "w"), indent=1, ensure_ascii=False)
