#!/usr/bin/env python3
"""Writes reference.json: all-MiniLM-L6-v2 vectors of test sentences, computed by an independent implementation.

The reference is sentence-transformers (PyTorch) running the same model files the Rust crate loads, in float64
so that the reference itself carries no float32 rounding. The Rust test (tests/reference.rs) requires cosine
>= 0.999 per sentence and the same word-piece counts.

Run once, by hand (not in CI; needs ~3 GB of PyTorch):
    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install sentence-transformers==6.2.0 torch==2.15.0
    bash ops/models/fetch-minilm.sh
    /tmp/refvenv/bin/python operators/embed/testdata/make_reference.py \
        ~/.cache/millionx/all-MiniLM-L6-v2 > operators/embed/testdata/reference.json
"""
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import modules as models

# (language, text). Written for this test (no third-party text); covers English, Banglish (Bangla in Latin
# script), Bangla (Bengali script, with a ZWJ and an emoji), an order text (`productName + " " + category`),
# an empty text, and a text past the 256 word-piece limit.
SENTENCES = [
    ("en", "Just got my Wireless Earbuds delivered in Dhaka, loving it!"),
    ("en", "The earbuds arrived in Dhaka today and I really like them."),
    ("en", "Flood warning: heavy rain expected in Sylhet tonight."),
    ("en", "My Power Bank stopped working after 2 days. Refund please @daraz"),
    ("order", "Hilsa Fish 1kg groceries"),
    ("order", "Miniket Rice 5kg groceries"),
    ("order", "Wireless Earbuds electronics"),
    ("banglish", "Alhamdulillah product ta valo, delivery o fast chilo"),
    ("banglish", "Dam onek beshi, ei dame kinbo na"),
    ("banglish", "vai ei earbuds er sound quality kemon? battery koto ghonta thake?"),
    ("bn", "আজ ঢাকায় খুব গরম! নতুন ছাতা কিনলাম 😍"),
    ("bn", "পণ্যটি খুব ভালো, দ্রুত ডেলিভারি পেয়েছি"),
    ("bn", "র‍্যাব এর দাম ৫০০ টাকা, [PHONE] এ কল করুন"),
    ("empty", ""),
    ("long", " ".join(["Flash sale on Jamdani Saree at daraz, limited stock, order now before Eid!"] * 30)),
]


def main():
    model_dir = sys.argv[1]
    word = models.Transformer(model_dir, max_seq_length=256)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    norm = models.Normalize()
    model = SentenceTransformer(modules=[word, pool, norm], device="cpu").to(torch.float64)
    texts = [t for _, t in SENTENCES]
    vectors = model.encode(texts, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    tok = word.tokenizer
    out = {
        "model": "all-MiniLM-L6-v2",
        "generator": "sentence-transformers %s, torch %s, float64, max_seq_length 256, mean pooling, Normalize"
        % (sentence_transformers.__version__, torch.__version__),
        "sentences": [
            {
                "lang": lang,
                "text": text,
                "tokens": len(tok(text, truncation=True, max_length=256)["input_ids"]),
                "vector": [float("%.8g" % x) for x in vec],
            }
            for (lang, text), vec in zip(SENTENCES, vectors)
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
