#!/usr/bin/env python3
"""Records greedy SmolLM2-135M-Instruct outputs with Python transformers (f32 reference).

Not run by CI. Produces crates/models/tests/fixtures/smollm2_reference.json, which the
Rust golden test (crates/models/tests/generator.rs) compares against on its f32 path.
transformers loads the GGUF and dequantises every tensor to f32, which is what the Rust
`Precision::F32` path does, so greedy decoding must agree token for token.

How it was run (throwaway venv outside the repository):

    python3 -m venv /tmp/venv-st && /tmp/venv-st/bin/pip install sentence-transformers gguf
    scripts/fetch-models.sh
    HF_HUB_OFFLINE=1 /tmp/venv-st/bin/python scripts/reference/record_generation.py \
        target/models/SmolLM2-135M-Instruct crates/models/tests/fixtures/smollm2_reference.json
"""
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_TOKENS = 24

CASES = [
    {
        "name": "chat_capital",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    },
    {
        "name": "chat_with_system_and_history",
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
            {"role": "user", "content": "Name a primary colour."},
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "Name another one, and say why it is primary."},
        ],
    },
    {"name": "plain_robot", "prompt": "Once upon a time, there was a little robot who"},
    {"name": "plain_digits", "prompt": "List: 1, 2, 3, 4,"},
]


def main() -> None:
    model_dir, out_path = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, gguf_file=GGUF, torch_dtype=torch.float32
    )
    model.eval()
    out_cases = []
    for case in CASES:
        if "messages" in case:
            text = tok.apply_chat_template(
                case["messages"], tokenize=False, add_generation_prompt=True
            )
        else:
            text = case["prompt"]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=None if "prompt" in case else tok.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            )
        new_ids = out[0, len(ids):].tolist()
        record = dict(case)
        record.update(
            {
                "prompt_text": text,
                "prompt_ids": ids,
                "completion_ids": new_ids,
                "completion_text": tok.decode(new_ids, skip_special_tokens=False),
            }
        )
        out_cases.append(record)
        print(case["name"], len(ids), new_ids, repr(record["completion_text"]))
    with open(out_path, "w") as f:
        json.dump(
            {
                "model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised to f32)",
                "produced_by": (
                    f"transformers {transformers.__version__}, torch {torch.__version__} (CPU), "
                    "greedy, scripts/reference/record_generation.py"
                ),
                "max_new_tokens": NEW_TOKENS,
                "cases": out_cases,
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")


if __name__ == "__main__":
    main()
