"""Reads one chat completion through the official OpenAI Python SDK and prints what it got as JSON.

Usage: openai_sdk_chat.py BASE_URL API_KEY REQUEST_JSON [stream]

REQUEST_JSON holds the create() arguments (model, messages, temperature, ...). With `stream`, the
answer is read as a stream (stream_options.include_usage set) and the chunks are assembled here,
as an application would; any malformed event makes the SDK raise and this script exit non-zero.
The e2e tests run it against Envoy + tollgate (envoy/e2e/tests/cache.rs).
"""
import json
import sys

import openai


def main():
    base_url, api_key, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    stream = len(sys.argv) > 4 and sys.argv[4] == "stream"
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**request)
        completion = raw.parse()
        print(json.dumps({
            "cache": raw.headers.get("x-tollgate-cache"),
            "content": completion.choices[0].message.content,
            "finish_reason": completion.choices[0].finish_reason,
            "usage": completion.usage.model_dump() if completion.usage else None,
        }))
        return
    raw = client.chat.completions.with_raw_response.create(
        stream=True, stream_options={"include_usage": True}, **request
    )
    content, finish, usage, chunks = "", None, None, 0
    for chunk in raw.parse():
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    print(json.dumps({
        "cache": raw.headers.get("x-tollgate-cache"),
        "content": content,
        "finish_reason": finish,
        "usage": usage,
        "chunks": chunks,
    }))


if __name__ == "__main__":
    main()
