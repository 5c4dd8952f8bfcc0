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
