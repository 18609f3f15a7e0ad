"""The official OpenAI Python client against `tessera gateway`, unmodified: models, chat,
streaming with usage, several choices (`n`, several prompts), embeddings (the SDK's
default base64), the Responses API (plain, streamed, and the SDK's stream helper), and
the error classes.
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

# The Responses API: the gateway answers it as a chat completion, routed and billed alike.
raw = client.responses.with_raw_response.create(
    model=chat_model, input="Say hello.", max_output_tokens=8, temperature=0
)
resp = raw.parse()
assert resp.object == "response" and resp.status in ("completed", "incomplete"), resp
assert resp.output[0].type == "message" and resp.output_text == resp.output[0].content[0].text, resp
assert 0 < resp.usage.output_tokens <= 8 and resp.usage.input_tokens > 0, resp.usage
out["responses_text"] = resp.output_text
out["responses_cost"] = resp.usage.model_extra["cost"]
budget_before = raw.headers.get("x-tessera-budget-remaining")
# A conversation fed back as the SDK returned it: output items as input items.
raw = client.responses.with_raw_response.create(
    model=chat_model,
    instructions="Answer briefly.",
    input=[{"role": "user", "content": "Say hello."}]
    + [o.model_dump(exclude_none=True) for o in resp.output]
    + [{"role": "user", "content": [{"type": "input_text", "text": "Again."}]}],
    max_output_tokens=8,
    temperature=0,
)
again = raw.parse()
assert again.output_text and again.usage.input_tokens > resp.usage.input_tokens, again
if budget_before is not None:
    # Operator mode: the key's budget fell by exactly the second response's cost.
    spent = int(budget_before) - int(raw.headers["x-tessera-budget-remaining"])
    assert spent == int(again.usage.model_extra["cost"]), (spent, again.usage)
    out["responses_budget_exact"] = True
events = list(
    client.responses.create(model=chat_model, input="Count to three.", max_output_tokens=8, temperature=0, stream=True)
)
kinds = [e.type for e in events]
assert kinds[:4] == [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
] and kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"], kinds
assert kinds[-1] in ("response.completed", "response.incomplete"), kinds
assert [e.sequence_number for e in events] == list(range(len(events)))
final = events[-1].response
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert final.output_text == deltas and final.usage.output_tokens <= 8, (final, deltas)
out["responses_stream_cost"] = final.usage.model_extra["cost"]
with client.responses.stream(model=chat_model, input="Say hi.", max_output_tokens=64, temperature=0) as s:
    helper = s.get_final_response()
assert helper.status == "completed" and helper.output_text, helper
try:
    client.responses.create(model=chat_model, input="x", previous_response_id="resp_1")
    raise AssertionError("previous_response_id accepted")
except openai.BadRequestError as e:
    out["responses_unsupported_param"] = e.param
try:
    client.responses.retrieve(resp.id)
    raise AssertionError("a response was stored")
except openai.NotFoundError as e:
    out["responses_retrieve_code"] = e.code

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

# Several choices (`n`): indexed in order, greedy choices alike, streamed by index.
two = client.chat.completions.create(
    model=chat_model, messages=[{"role": "user", "content": "Name a colour."}], n=2, max_tokens=4, temperature=0
)
assert [c.index for c in two.choices] == [0, 1], two
assert two.choices[0].message.content == two.choices[1].message.content, two
streamed = ["", ""]
for chunk in client.chat.completions.create(
    model=chat_model, messages=[{"role": "user", "content": "Name a colour."}], n=2, max_tokens=4, temperature=0, stream=True
):
    for c in chunk.choices:
        streamed[c.index] += c.delta.content or ""
assert streamed == [c.message.content for c in two.choices], (streamed, two)
out["n2_cost"] = two.usage.model_extra["cost"]
# Log probabilities: each token's bytes add up to the text, alternatives most likely first.
lp = client.chat.completions.create(
    model=chat_model, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=4, temperature=0,
    logprobs=True, top_logprobs=2,
)
tokens = lp.choices[0].logprobs.content
assert tokens and bytes(b for t in tokens for b in t.bytes).decode() == lp.choices[0].message.content, lp
assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in tokens), lp
out["logprobs_tokens"] = len(tokens)
# JSON mode: the answer parses as a JSON object.
j = client.chat.completions.create(
    model=chat_model, messages=[{"role": "user", "content": "Describe a cat as JSON with a name and an age."}],
    max_tokens=200, temperature=0, response_format={"type": "json_object"},
)
assert j.choices[0].finish_reason == "stop" and isinstance(json.loads(j.choices[0].message.content), dict), j
out["json_mode"] = json.loads(j.choices[0].message.content)
# Legacy completions with several prompts: choice i answers prompt i.
several = client.completions.create(model=chat_model, prompt=["Paris is", "Rome is"], max_tokens=3, temperature=0)
assert [c.index for c in several.choices] == [0, 1] and all(c.text for c in several.choices), several

try:
    client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "x"}], n=17)
    raise AssertionError("n=17 accepted")
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
