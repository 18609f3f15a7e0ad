"""The official OpenAI Python client against `tessera gateway`, unmodified: models, chat,
streaming with usage, embeddings (the SDK's default base64), and the error classes.
Environment: OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL, EMBED_MODEL, PREFER (a provider
address tried first); for an operator gateway also KEY_NO_FUNDS (a key whose owner has no
balance: 402) and KEY_RPM1 (a key limited to one request a minute: 429). Prints one JSON
object of findings; exits non-zero on a failed check."""

import json
import os

import openai
from openai import OpenAI

client = OpenAI(max_retries=0)
chat_model = os.environ["CHAT_MODEL"]
embed_model = os.environ["EMBED_MODEL"]
out = {}

models = [m.id for m in client.models.list()]
assert chat_model in models and embed_model in models, models
assert client.models.retrieve(chat_model).id == chat_model

raw = client.chat.completions.with_raw_response.create(
    model=chat_model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
)
chat = raw.parse()
assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
assert chat.usage.completion_tokens <= 8 and chat.usage.prompt_tokens > 0
out["chat_text"] = chat.choices[0].message.content
out["chat_cost"] = chat.usage.model_extra["cost"]
out["chat_provider"] = raw.headers["x-tessera-provider"]
out["request_id"] = raw.headers["x-request-id"]

stream = client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "Count to three."}],
    max_tokens=8,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, usage = [], None
for chunk in stream:
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
    if chunk.usage is not None:
        usage = chunk.usage
assert usage is not None and usage.completion_tokens <= 8, usage
out["stream_text"] = "".join(pieces)
out["stream_cost"] = usage.model_extra["cost"]

emb = client.embeddings.create(model=embed_model, input=["a token network", "for AI compute"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
norm = sum(x * x for x in emb.data[0].embedding) ** 0.5
assert abs(norm - 1.0) < 1e-3, norm
out["embedding_dims"] = len(emb.data[0].embedding)

# Fallback: a provider that is down is tried first on request; the call still succeeds.
if os.environ.get("PREFER"):
    r = client.chat.completions.with_raw_response.create(
        model=chat_model,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        extra_body={"provider": {"order": [os.environ["PREFER"]]}},
    )
    out["fallback_provider"] = r.headers["x-tessera-provider"]

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    out["not_found_code"] = e.code

try:
    OpenAI(api_key="wrong", max_retries=0).models.list()
    raise AssertionError("bad key accepted")
except openai.AuthenticationError as e:
    out["auth_code"] = e.code

try:
    client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "x"}], n=3)
    raise AssertionError("n=3 accepted")
except openai.BadRequestError as e:
    out["bad_request_param"] = e.param

if os.environ.get("KEY_NO_FUNDS"):
    try:
        OpenAI(api_key=os.environ["KEY_NO_FUNDS"]).embeddings.create(model=embed_model, input="x")
        raise AssertionError("a key without funds was served")
    except openai.APIStatusError as e:
        # 402 has no class of its own in the SDK, and it is not retried.
        assert type(e) is openai.APIStatusError and e.status_code == 402, e
        out["no_funds_code"] = e.code

if os.environ.get("KEY_RPM1"):
    limited = OpenAI(api_key=os.environ["KEY_RPM1"], max_retries=0)
    limited.embeddings.create(model=embed_model, input="x")
    try:
        limited.embeddings.create(model=embed_model, input="y")
        raise AssertionError("a key limited to 1 rpm made two requests")
    except openai.RateLimitError as e:
        out["rate_limit_code"] = e.code
        out["retry_after_ms"] = e.response.headers["retry-after-ms"]

print(json.dumps(out))
