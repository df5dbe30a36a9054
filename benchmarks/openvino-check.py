#!/usr/bin/env python3
"""Cross-check of the OpenVINO graph outside Rust (benchmarks/embed.md, "OpenVINO backend"): min cosine against
operators/embed/testdata/reference.json, and sentences per CPU-second on 512 distinct gen.py posts, through the
openvino Python API with the same wheel and model.onnx the Rust backend loads.

    python3 -m venv /tmp/ovpy && /tmp/ovpy/bin/pip install openvino==2026.4.1 numpy tokenizers
    python3 ../shared/datagen/gen.py --out /tmp/embed-bench-in --social 5000 --market 5000 --hours 24
    /tmp/ovpy/bin/python benchmarks/openvino-check.py ~/.cache/millionx/all-MiniLM-L6-v2 /tmp/embed-bench-in

Not run in CI.
"""
import json
import sys
import time

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

model_dir, data_dir = sys.argv[1:3]
tok = Tokenizer.from_file(model_dir + "/tokenizer.json")
tok.no_padding()
tok.enable_truncation(256)
core = ov.Core()


def compiled(prec):
    cfg = {"INFERENCE_PRECISION_HINT": prec, "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1", "ENABLE_CPU_PINNING": "NO"}
    return core.compile_model(model_dir + "/model.onnx", "CPU", cfg)


def padded(encs):
    width = max(map(len, encs))
    ids = np.zeros((len(encs), width), np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e)] = e
        mask[i, : len(e)] = 1
    return {"input_ids": ids, "attention_mask": mask}


ref = json.load(open("operators/embed/testdata/reference.json"))["sentences"]
seen, posts = set(), []
for line in open(data_dir + "/social.jsonl"):
    try:
        c = json.loads(line).get("content")
    except ValueError:
        continue
    if isinstance(c, str) and c not in seen:
        seen.add(c)
        posts.append(c)
posts = ["%s #%d" % (t, i) for i, t in enumerate((posts * 20)[:512])]
for prec in ["bf16", "f32"]:
    cm = compiled(prec)
    vs = cm(padded([tok.encode(s["text"]).ids for s in ref]))["embedding"]
    worst = min(float(v @ np.array(s["vector"]) / np.linalg.norm(s["vector"])) for v, s in zip(vs, ref))
    print("%s: min cosine vs fp64 reference (padded batch) %.7f" % (prec, worst))
    for batch in [8, 32]:
        req = compiled(prec).create_infer_request()

        def run(texts):
            for i in range(0, len(texts), batch):
                req.infer(padded(sorted((tok.encode(t).ids for t in texts[i : i + batch]), key=len)))

        run(posts[:64])
        c0, w0 = time.process_time(), time.time()
        run(posts)
        cpu, wall = time.process_time() - c0, time.time() - w0
        print("%s batch %d: %d sentences, wall %.2f s, CPU %.2f s, %.0f sentences per CPU-s" % (prec, batch, len(posts), wall, cpu, len(posts) / cpu))
