"""The official OpenAI and Anthropic Python SDKs against a real mamori gateway.

Run by tests/sdk_e2e.rs (`cargo test --test sdk_e2e`), which starts the local mock provider and
the gateway, sets up providers, contracts, staff and keys with the real CLI, and passes:

- MAMORI_URL: the gateway, e.g. http://127.0.0.1:PORT
- MAMORI_KEY: a working key (trained staff, open contract, every approved provider)
- MAMORI_KEY_REVOKED, MAMORI_KEY_EXPIRED, MAMORI_KEY_UNTRAINED, MAMORI_KEY_ENDED: keys refused
  at each step before routing
- MAMORI_KEY_ANTHROPIC_ONLY, MAMORI_KEY_OPENAI_ONLY: keys of contracts limited to one provider
- MAMORI_E2E_IDS (optional): a file where some tests append "name<TAB>request id" lines, so the
  Rust side can check those requests' records in the output log

The mock answers "受け取りました: <last user text>", or "ツールの結果を受け取りました: <tool result>"
after a tool result, and calls the first offered tool with {"city":"東京","days":3}.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

URL = os.environ["MAMORI_URL"].rstrip("/")
KEY = os.environ["MAMORI_KEY"]
KEY_REVOKED = os.environ["MAMORI_KEY_REVOKED"]
KEY_EXPIRED = os.environ["MAMORI_KEY_EXPIRED"]
KEY_UNTRAINED = os.environ["MAMORI_KEY_UNTRAINED"]
KEY_ENDED = os.environ["MAMORI_KEY_ENDED"]
KEY_ANTHROPIC_ONLY = os.environ["MAMORI_KEY_ANTHROPIC_ONLY"]
KEY_OPENAI_ONLY = os.environ["MAMORI_KEY_OPENAI_ONLY"]
BAD_KEY = "mamori_sk_not-a-real-key"

GPT = "mock-gpt"
EMBED = "mock-embed"
CLAUDE = "mock-claude"
TRAINING_MODEL = "mock-free"  # served only by a provider with trains_on_inputs = true
SUSPENDED_MODEL = "mock-paused"  # an OpenAI-wire provider that is suspended
SUSPENDED_CLAUDE = "mock-claude-paused"  # an Anthropic-wire provider that is suspended

PROMPT = "来週の東京出張の持ち物を三つ挙げてください。"
ECHO = "受け取りました: " + PROMPT
TOOL_ARGS = {"city": "東京", "days": 3}
TOOL_RESULT = "晴れ、最高気温12度"
TOOL_ECHO = "ツールの結果を受け取りました: " + TOOL_RESULT
TIMEOUT = 30.0


def oai(key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0, timeout=TIMEOUT)


def ant(key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=URL, api_key=key, max_retries=0, timeout=TIMEOUT)


def user(text: str = PROMPT) -> list[dict]:
    return [{"role": "user", "content": text}]


OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "都市の天気予報を返す",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]

ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "都市の天気予報を返す",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    }
]


def assert_request_id(headers, record_as: str | None = None) -> str:
    """Asserts the response carries X-Mamori-Request-Id; with `record_as`, notes it for the Rust side."""
    rid = headers.get("x-mamori-request-id")
    assert rid, f"no X-Mamori-Request-Id in {dict(headers)}"
    assert rid.startswith("req_"), rid
    ids = os.environ.get("MAMORI_E2E_IDS")
    if record_as and ids:
        with open(ids, "a", encoding="utf-8") as f:
            f.write(f"{record_as}\t{rid}\n")
    return rid


# ---------------------------------------------------------------------------------------------
# OpenAI SDK
# ---------------------------------------------------------------------------------------------


def test_openai_chat():
    r = oai().chat.completions.create(model=GPT, messages=user())
    assert r.object == "chat.completion"
    assert r.model == GPT
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == ECHO
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.total_tokens > 0


def test_openai_chat_with_system_and_history():
    messages = [
        {"role": "system", "content": "あなたは丁寧なアシスタントです。"},
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "こんにちは。"},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    r = oai().chat.completions.create(model=GPT, messages=messages)
    assert r.choices[0].message.content == ECHO


def test_openai_chat_request_id_header():
    raw = oai().chat.completions.with_raw_response.create(model=GPT, messages=user())
    assert raw.status_code == 200
    assert_request_id(raw.headers, "chat")
    assert raw.parse().choices[0].message.content == ECHO


def test_openai_attribution_headers():
    # The deliverable and purpose sent by the client win over the key's defaults in the log.
    raw = oai().chat.completions.with_raw_response.create(
        model=GPT,
        messages=user(),
        extra_headers={"X-Mamori-Deliverable": "report-2026-q4", "X-Mamori-Purpose": "summary of meeting notes"},
    )
    assert_request_id(raw.headers, "attributed")
    assert raw.parse().choices[0].message.content == ECHO


def test_openai_chat_stream():
    stream = oai().chat.completions.create(
        model=GPT, messages=user(), stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == ECHO
    assert chunks > 3, "the answer should arrive in several chunks"
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_openai_chat_stream_helper():
    with oai().chat.completions.stream(model=GPT, messages=user()) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == ECHO
    assert final.choices[0].message.content == ECHO


def test_openai_stream_request_id_header():
    with oai().chat.completions.with_streaming_response.create(
        model=GPT, messages=user(), stream=True
    ) as raw:
        assert raw.status_code == 200
        assert raw.headers.get("content-type", "").startswith("text/event-stream")
        assert_request_id(raw.headers, "chat-stream")
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == ECHO


def test_openai_tool_call_round_trip():
    client = oai()
    first = client.chat.completions.create(model=GPT, messages=user("東京の3日間の天気は?"), tools=OPENAI_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGS

    messages = user("東京の3日間の天気は?") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
    ]
    second = client.chat.completions.create(model=GPT, messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == TOOL_ECHO


def test_openai_tool_call_streaming():
    stream = oai().chat.completions.create(
        model=GPT, messages=user("東京の天気は?"), tools=OPENAI_TOOLS, stream=True
    )
    name, args, finish = None, "", None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    name = tc.function.name
                if tc.function and tc.function.arguments:
                    args += tc.function.arguments
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(args) == TOOL_ARGS
    assert finish == "tool_calls"


def test_openai_responses():
    r = oai().responses.create(model=GPT, input=PROMPT)
    assert r.status == "completed"
    assert r.output_text == ECHO
    assert r.usage is not None and r.usage.total_tokens > 0


def test_openai_responses_request_id_header():
    raw = oai().responses.with_raw_response.create(model=GPT, input=PROMPT)
    assert_request_id(raw.headers, "responses")
    assert raw.parse().output_text == ECHO


def test_openai_responses_stream():
    with oai().responses.with_streaming_response.create(model=GPT, input=PROMPT, stream=True) as raw:
        assert_request_id(raw.headers, "responses-stream")
        events = list(raw.parse())
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_text.done" in types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == ECHO
    assert events[-1].response.output_text == ECHO


def test_openai_responses_stream_helper():
    with oai().responses.stream(model=GPT, input=PROMPT) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == ECHO
    assert final.output_text == ECHO


def mock_vector(text: str) -> list[float]:
    """The mock's embedding of `text` (see src/mock/mod.rs)."""
    n = len(text.encode("utf-8"))
    return [((n + k) % 7) / 7.0 for k in range(8)]


def test_openai_embeddings_base64_default():
    # Without encoding_format the SDK asks for base64 and decodes it: the bytes must pass intact.
    inputs = ["一つ目の文", "second sentence"]
    r = oai().embeddings.create(model=EMBED, input=inputs)
    assert len(r.data) == 2
    for item, text in zip(sorted(r.data, key=lambda d: d.index), inputs):
        assert len(item.embedding) == 8
        assert item.embedding == pytest.approx(mock_vector(text), abs=1e-6)
    assert r.usage.total_tokens > 0


def test_openai_embeddings_float():
    r = oai().embeddings.create(model=EMBED, input="単一の入力", encoding_format="float")
    assert len(r.data) == 1
    assert r.data[0].embedding == pytest.approx(mock_vector("単一の入力"), abs=1e-6)


def test_openai_models_list():
    ids = [m.id for m in oai().models.list()]
    assert GPT in ids and EMBED in ids, ids
    assert TRAINING_MODEL not in ids, "a training provider's model must not be listed"
    assert SUSPENDED_MODEL not in ids, "a suspended provider's model must not be listed"


def test_openai_models_list_follows_the_contract():
    ids = [m.id for m in oai(KEY_ANTHROPIC_ONLY).models.list()]
    assert CLAUDE in ids, ids
    assert GPT not in ids, f"a key of an Anthropic-only contract lists {ids}"


def test_openai_provider_prefixed_model():
    # `provider-id/model` picks the provider explicitly.
    r = oai().chat.completions.create(model="local-mock/" + GPT, messages=user())
    assert r.choices[0].message.content == ECHO


def test_openai_concurrent_streams():
    # Several streams at once through one client: no answer mixes with another's.
    client = oai()

    def one(i: int) -> tuple[str, str]:
        prompt = f"並行リクエスト{i}番です"
        stream = client.chat.completions.create(model=GPT, messages=user(prompt), stream=True)
        return prompt, "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(16)))
    for prompt, text in results:
        assert text == "受け取りました: " + prompt


def test_openai_async_client():
    async def go() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT) as client:
            r = await client.chat.completions.create(model=GPT, messages=user())
            stream = await client.chat.completions.create(model=GPT, messages=user(), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return r.choices[0].message.content, text

    whole, streamed = asyncio.run(go())
    assert whole == ECHO and streamed == ECHO


def test_openai_upstream_error_passes_through():
    with pytest.raises(openai.InternalServerError) as e:
        oai().chat.completions.create(model="mock-error", messages=user())
    assert e.value.status_code == 500
    assert_request_id(e.value.response.headers)


# ---------------------------------------------------------------------------------------------
# Anthropic SDK
# ---------------------------------------------------------------------------------------------


def test_anthropic_messages():
    m = ant().messages.create(model=CLAUDE, max_tokens=256, messages=user())
    assert m.type == "message" and m.role == "assistant"
    assert m.model == CLAUDE
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == ECHO
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_anthropic_messages_with_system_and_blocks():
    m = ant().messages.create(
        model=CLAUDE,
        max_tokens=256,
        system="あなたは丁寧なアシスタントです。",
        messages=[
            {"role": "user", "content": "こんにちは"},
            {"role": "assistant", "content": "こんにちは。"},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        ],
    )
    assert m.content[0].text == ECHO


def test_anthropic_request_id_header():
    raw = ant().messages.with_raw_response.create(model=CLAUDE, max_tokens=256, messages=user())
    assert raw.status_code == 200
    assert_request_id(raw.headers, "messages")
    assert raw.parse().content[0].text == ECHO


def test_anthropic_messages_stream():
    with ant().messages.stream(model=CLAUDE, max_tokens=256, messages=user()) as stream:
        assert_request_id(stream.response.headers, "messages-stream")
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ECHO
    assert final.content[0].text == ECHO
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_anthropic_messages_raw_stream_events():
    events = list(ant().messages.create(model=CLAUDE, max_tokens=256, messages=user(), stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "message_delta" in types
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == ECHO


def test_anthropic_tool_use_round_trip():
    client = ant()
    first = client.messages.create(
        model=CLAUDE, max_tokens=256, tools=ANTHROPIC_TOOLS, messages=user("東京の3日間の天気は?")
    )
    assert first.stop_reason == "tool_use"
    tool_uses = [b for b in first.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    tu = tool_uses[0]
    assert tu.name == "get_weather"
    assert tu.input == TOOL_ARGS

    messages = user("東京の3日間の天気は?") + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": TOOL_RESULT}],
        },
    ]
    second = client.messages.create(model=CLAUDE, max_tokens=256, tools=ANTHROPIC_TOOLS, messages=messages)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == TOOL_ECHO


def test_anthropic_tool_use_streaming():
    with ant().messages.stream(
        model=CLAUDE, max_tokens=256, tools=ANTHROPIC_TOOLS, messages=user("東京の天気は?")
    ) as stream:
        assert_request_id(stream.response.headers, "messages-tool-stream")
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].name == "get_weather"
    assert final.content[0].input == TOOL_ARGS


def test_anthropic_beta_messages():
    # The beta surface (used by Claude Code) posts to /v1/messages?beta=true with anthropic-beta.
    m = ant().beta.messages.create(
        model=CLAUDE, max_tokens=256, messages=user(), betas=["context-management-2025-06-27"]
    )
    assert m.content[0].text == ECHO
    with ant().beta.messages.stream(model=CLAUDE, max_tokens=256, messages=user()) as stream:
        assert "".join(stream.text_stream) == ECHO


def test_anthropic_provider_prefixed_model():
    m = ant().messages.create(model="local-mock-anthropic/" + CLAUDE, max_tokens=256, messages=user())
    assert m.content[0].text == ECHO


def test_anthropic_async_stream():
    async def go() -> str:
        async with anthropic.AsyncAnthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=TIMEOUT) as client:
            async with client.messages.stream(model=CLAUDE, max_tokens=256, messages=user()) as stream:
                return "".join([t async for t in stream.text_stream])

    assert asyncio.run(go()) == ECHO


def test_anthropic_count_tokens():
    raw = ant().messages.with_raw_response.count_tokens(model=CLAUDE, messages=user())
    assert_request_id(raw.headers, "count-tokens")
    assert raw.parse().input_tokens > 0


def test_anthropic_models_list():
    ids = [m.id for m in ant().models.list()]
    assert CLAUDE in ids, ids
    assert TRAINING_MODEL not in ids and SUSPENDED_CLAUDE not in ids, ids


# ---------------------------------------------------------------------------------------------
# Refusals: one for each step of the policy, as each SDK's own exception with mamori's code
# ---------------------------------------------------------------------------------------------

IMAGE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

OPENAI_REFUSALS = [
    # (name, key, model, messages, exception class, status, code)
    ("unknown key", BAD_KEY, GPT, None, openai.AuthenticationError, 401, "invalid_api_key"),
    ("revoked key", KEY_REVOKED, GPT, None, openai.AuthenticationError, 401, "key_revoked"),
    ("expired key", KEY_EXPIRED, GPT, None, openai.AuthenticationError, 401, "key_expired"),
    ("untrained staff", KEY_UNTRAINED, GPT, None, openai.PermissionDeniedError, 403, "training_not_current"),
    ("ended contract", KEY_ENDED, GPT, None, openai.PermissionDeniedError, 403, "contract_inactive"),
    ("unknown model", KEY, "no-such-model", None, openai.NotFoundError, 404, "model_not_registered"),
    ("Anthropic model via OpenAI", KEY, CLAUDE, None, openai.NotFoundError, 404, "model_not_registered"),
    ("training provider", KEY, TRAINING_MODEL, None, openai.PermissionDeniedError, 403, "provider_not_approved"),
    ("suspended provider", KEY, SUSPENDED_MODEL, None, openai.PermissionDeniedError, 403, "provider_not_approved"),
    (
        "training provider named explicitly",
        KEY,
        "e2e-trainer/" + TRAINING_MODEL,
        None,
        openai.PermissionDeniedError,
        403,
        "provider_not_approved",
    ),
    (
        "provider outside the contract",
        KEY_ANTHROPIC_ONLY,
        GPT,
        None,
        openai.PermissionDeniedError,
        403,
        "provider_not_allowed_for_contract",
    ),
    (
        "image content",
        KEY,
        GPT,
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "この画像は?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + IMAGE_PNG}},
                ],
            }
        ],
        openai.BadRequestError,
        400,
        "unsupported_content",
    ),
    (
        "oversized request",
        KEY,
        GPT,
        user("あ" * 200_000),
        openai.APIStatusError,
        413,
        "request_too_large",
    ),
]


@pytest.mark.parametrize(
    "key,model,messages,exc,status,code",
    [r[1:] for r in OPENAI_REFUSALS],
    ids=[r[0] for r in OPENAI_REFUSALS],
)
def test_openai_refusal(key, model, messages, exc, status, code):
    with pytest.raises(exc) as e:
        oai(key).chat.completions.create(model=model, messages=messages or user())
    err = e.value
    assert err.status_code == status, err
    assert err.code == code, err.body
    assert isinstance(err.body, dict) and err.body.get("type"), err.body
    assert len(err.body.get("message", "")) > 20, f"the message must say what to do: {err.body}"
    assert key not in str(err.body) or key == KEY, "the key was echoed back"
    assert_request_id(err.response.headers)


def test_openai_refusal_streaming():
    # A refusal is an HTTP error even when a stream was asked for.
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai(KEY_UNTRAINED).chat.completions.create(model=GPT, messages=user(), stream=True)
    assert e.value.code == "training_not_current"


@pytest.mark.parametrize(
    "call,code",
    [
        (lambda c: c.responses.create(model=TRAINING_MODEL, input=PROMPT), "provider_not_approved"),
        (lambda c: c.embeddings.create(model="no-such-embedding", input="x"), "model_not_registered"),
    ],
    ids=["responses", "embeddings"],
)
def test_openai_refusal_other_endpoints(call, code):
    with pytest.raises(openai.APIStatusError) as e:
        call(oai())
    assert e.value.code == code, e.value.body


def test_openai_models_list_refused_for_revoked_key():
    with pytest.raises(openai.AuthenticationError) as e:
        oai(KEY_REVOKED).models.list()
    assert e.value.code == "key_revoked"


ANTHROPIC_REFUSALS = [
    ("unknown key", BAD_KEY, CLAUDE, None, anthropic.AuthenticationError, 401, "invalid_api_key"),
    ("revoked key", KEY_REVOKED, CLAUDE, None, anthropic.AuthenticationError, 401, "key_revoked"),
    ("expired key", KEY_EXPIRED, CLAUDE, None, anthropic.AuthenticationError, 401, "key_expired"),
    ("untrained staff", KEY_UNTRAINED, CLAUDE, None, anthropic.PermissionDeniedError, 403, "training_not_current"),
    ("ended contract", KEY_ENDED, CLAUDE, None, anthropic.PermissionDeniedError, 403, "contract_inactive"),
    ("unknown model", KEY, "no-such-model", None, anthropic.NotFoundError, 404, "model_not_registered"),
    ("OpenAI model via Anthropic", KEY, GPT, None, anthropic.NotFoundError, 404, "model_not_registered"),
    ("suspended provider", KEY, SUSPENDED_CLAUDE, None, anthropic.PermissionDeniedError, 403, "provider_not_approved"),
    (
        "provider outside the contract",
        KEY_OPENAI_ONLY,
        CLAUDE,
        None,
        anthropic.PermissionDeniedError,
        403,
        "provider_not_allowed_for_contract",
    ),
    (
        "image content",
        KEY,
        CLAUDE,
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_PNG}},
                    {"type": "text", "text": "この画像は?"},
                ],
            }
        ],
        anthropic.BadRequestError,
        400,
        "unsupported_content",
    ),
    (
        "oversized request",
        KEY,
        CLAUDE,
        user("あ" * 200_000),
        anthropic.APIStatusError,
        413,
        "request_too_large",
    ),
]


@pytest.mark.parametrize(
    "key,model,messages,exc,status,code",
    [r[1:] for r in ANTHROPIC_REFUSALS],
    ids=[r[0] for r in ANTHROPIC_REFUSALS],
)
def test_anthropic_refusal(key, model, messages, exc, status, code):
    with pytest.raises(exc) as e:
        ant(key).messages.create(model=model, max_tokens=64, messages=messages or user())
    err = e.value
    assert err.status_code == status, err
    body = err.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["code"] == code, body
    assert body["error"].get("type"), body
    assert len(body["error"].get("message", "")) > 20, f"the message must say what to do: {body}"
    assert key not in str(body) or key == KEY, "the key was echoed back"
    assert_request_id(err.response.headers)


def test_anthropic_refusal_streaming():
    with pytest.raises(anthropic.AuthenticationError) as e:
        with ant(KEY_EXPIRED).messages.stream(model=CLAUDE, max_tokens=64, messages=user()) as stream:
            stream.get_final_message()
    assert e.value.body["error"]["code"] == "key_expired"


def test_anthropic_count_tokens_refused():
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        ant(KEY_UNTRAINED).messages.count_tokens(model=CLAUDE, messages=user())
    assert e.value.body["error"]["code"] == "training_not_current"
