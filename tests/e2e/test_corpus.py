"""The public redaction corpus through the official SDKs, streaming and not.

Run by tests/sdk_e2e.rs against the real gateway with the local mock provider, which echoes the
last user text. For each case the client must get the original text back where values were
pseudonymized, and must never see a masked value; requests a blocking rule refuses must fail with
`confidential_content_blocked`. The Rust side then checks that no secret reached the log (and so
the provider: the log keeps the request exactly as sent upstream).

Environment: MAMORI_URL, MAMORI_KEY, MAMORI_CORPUS (the .jsonl), MAMORI_E2E_CORPUS_IDS (a file
where "case id<TAB>request id" lines are appended).
"""
from __future__ import annotations

import json
import os

import anthropic
import openai
import pytest

URL = os.environ["MAMORI_URL"].rstrip("/")
KEY = os.environ["MAMORI_KEY"]
CASES = [json.loads(l) for l in open(os.environ["MAMORI_CORPUS"], encoding="utf-8") if l.strip()]
ECHO = "受け取りました: "


def note(case: dict, headers) -> None:
    rid = headers.get("x-mamori-request-id")
    assert rid, "no X-Mamori-Request-Id"
    path = os.environ.get("MAMORI_E2E_CORPUS_IDS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{case['id']}\t{rid}\n")


def check_answer(case: dict, got: str, redactions: int) -> None:
    assert got.startswith(ECHO), got
    if case["secrets"]:
        assert redactions > 0, f"{case['id']}: X-Mamori-Redactions is {redactions}"
    if got != ECHO + case["text"]:
        # Not fully restored: only masked values may be missing, and none may show.
        for s in case["secrets"]:
            assert s not in got, f"{case['id']}: a masked value reached the client"
    for k in case["must_keep"]:
        assert k in got, f"{case['id']}: {k} did not survive"


def blocked(err: Exception) -> bool:
    body = getattr(err, "body", None) or {}
    code = body.get("code") or (body.get("error") or {}).get("code")
    return code == "confidential_content_blocked"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_chat(case: dict, stream: bool) -> None:
    client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": case["text"]}]
    try:
        if stream:
            with client.chat.completions.with_streaming_response.create(model="mock-gpt", messages=messages, stream=True) as r:
                note(case, r.headers)
                n = int(r.headers.get("x-mamori-redactions", "0"))
                got = "".join(c.choices[0].delta.content or "" for c in r.parse() if c.choices)
        else:
            raw = client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages)
            note(case, raw.headers)
            n = int(raw.headers.get("x-mamori-redactions", "0"))
            got = raw.parse().choices[0].message.content
    except openai.BadRequestError as e:
        assert blocked(e), f"{case['id']}: unexpected refusal {e}"
        return
    check_answer(case, got, n)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_messages(case: dict, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": case["text"]}]
    try:
        if stream:
            with client.messages.with_streaming_response.create(model="mock-claude", max_tokens=256, messages=messages, stream=True) as r:
                note(case, r.headers)
                n = int(r.headers.get("x-mamori-redactions", "0"))
                got = "".join(e.delta.text for e in r.parse() if e.type == "content_block_delta" and e.delta.type == "text_delta")
        else:
            raw = client.messages.with_raw_response.create(model="mock-claude", max_tokens=256, messages=messages)
            note(case, raw.headers)
            n = int(raw.headers.get("x-mamori-redactions", "0"))
            got = "".join(b.text for b in raw.parse().content if b.type == "text")
    except anthropic.BadRequestError as e:
        assert blocked(e), f"{case['id']}: unexpected refusal {e}"
        return
    check_answer(case, got, n)
