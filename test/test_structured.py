#!/usr/bin/env python3
"""The simulated node honours structured output, checked by an independent
validator (Debian's python3-jsonschema): for Ollama's `format` ("json" or a
schema) and OpenAI's `response_format` (json_object, json_schema), whole and
streamed, chat and generate, every answer parses and validates, and the
streamed pieces concatenate to the whole. Also: max_completion_tokens, a tool
result answered in a whole answer too, embedding dimensions.

Usage: test_structured.py AGENTS"""
import json
import os
import sys
import urllib.request

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import ok, start_sim, summary  # noqa: E402

AG = sys.argv[1]


sim, host = start_sim(AG, "--tokens", "12")


def post(path, body):
    req = urllib.request.Request("http://%s%s" % (host, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def ollama_text(path, body):
    """(whole text, streamed text concatenated)"""
    whole = json.loads(post(path, dict(body, stream=False)))
    key = "message" if path == "/api/chat" else None
    w = whole["message"]["content"] if key else whole["response"]
    s = ""
    for line in post(path, dict(body, stream=True)).splitlines():
        if line.strip():
            o = json.loads(line)
            s += o["message"]["content"] if key else o.get("response", "")
    return w, s


def openai_text(body):
    whole = json.loads(post("/v1/chat/completions", dict(body, stream=False)))
    w = whole["choices"][0]["message"]["content"]
    s = ""
    for line in post("/v1/chat/completions", dict(body, stream=True)).splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            d = json.loads(line[6:])["choices"][0].get("delta", {})
            s += d.get("content") or ""
    return w, s


SCHEMAS = {
    "flat": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18,
             "maximum": 99}, "ok": {"type": "boolean"}}, "required": ["name", "age"]},
    "enum and const": {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]},
                       "kind": {"const": "fruit"}, "score": {"type": "number", "exclusiveMinimum": 0,
                       "exclusiveMaximum": 1}}, "required": ["color", "kind", "score"]},
    "arrays": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 5},
               "minItems": 3, "maxItems": 4}, "pair": {"type": "array", "prefixItems": [{"type": "integer"},
               {"type": "string"}]}}, "required": ["tags"]},
    "nested with $defs": {"type": "object", "$defs": {"Address": {"type": "object", "properties": {
                          "city": {"type": "string", "minLength": 3}, "zip": {"type": "string"}},
                          "required": ["city", "zip"]}}, "properties": {"home": {"$ref": "#/$defs/Address"},
                          "others": {"type": "array", "items": {"$ref": "#/$defs/Address"}}},
                          "required": ["home", "others"]},
    "anyOf and nullable": {"type": "object", "properties": {"id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                           "note": {"type": ["string", "null"]}, "when": {"type": "string", "format": "date-time"}},
                           "required": ["id", "note", "when"], "additionalProperties": False},
    "zod-style (definitions)": {"type": "object", "definitions": {"Step": {"type": "object", "properties": {
                                "explanation": {"type": "string"}, "output": {"type": "string"}},
                                "required": ["explanation", "output"], "additionalProperties": False}},
                                "properties": {"steps": {"type": "array", "items": {"$ref": "#/definitions/Step"}},
                                "final_answer": {"type": "string"}}, "required": ["steps", "final_answer"],
                                "additionalProperties": False},
    "top-level array": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
                        "required": ["n"]}, "minItems": 2},
}

msgs = [{"role": "user", "content": "describe something"}]
try:
    for name, schema in SCHEMAS.items():
        for path in ("/api/chat", "/api/generate"):
            body = {"model": "llama3.2", "format": schema, "options": {"num_predict": 3}}
            body.update({"messages": msgs} if path == "/api/chat" else {"prompt": "describe something"})
            w, s = ollama_text(path, body)
            try:
                jsonschema.validate(json.loads(w), schema)
                ok(True, "")
            except Exception as e:
                ok(False, "%s %s (Ollama format, whole): %s: %r" % (name, path, e, w))
            ok(s == w, "%s %s: the streamed pieces %r are not the whole %r" % (name, path, s, w))
        w, s = openai_text({"model": "llama3.2", "messages": msgs,
                            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
        try:
            jsonschema.validate(json.loads(w), schema)
            ok(True, "")
        except Exception as e:
            ok(False, "%s (OpenAI json_schema): %s: %r" % (name, e, w))
        ok(s == w, "%s (OpenAI): the streamed pieces differ from the whole" % name)
    # "json" and json_object: a JSON object
    w, s = ollama_text("/api/chat", {"model": "llama3.2", "format": "json", "messages": msgs})
    ok(isinstance(json.loads(w), dict) and s == w, "format json: %r / %r" % (w, s))
    w, s = openai_text({"model": "llama3.2", "messages": msgs, "response_format": {"type": "json_object"}})
    ok(isinstance(json.loads(w), dict) and s == w, "json_object: %r / %r" % (w, s))
    # the same request, the same instance
    a, _ = ollama_text("/api/chat", {"model": "llama3.2", "format": SCHEMAS["flat"], "messages": msgs})
    b, _ = ollama_text("/api/chat", {"model": "llama3.2", "format": SCHEMAS["flat"], "messages": msgs})
    ok(a == b, "not deterministic: %r %r" % (a, b))
    # max_completion_tokens, as max_tokens
    d = json.loads(post("/v1/chat/completions", {"model": "llama3.2", "messages": msgs, "max_completion_tokens": 3}))
    ok(d["usage"]["completion_tokens"] == 3 and d["choices"][0]["finish_reason"] == "length",
       "max_completion_tokens: %r" % d["usage"])
    # a tool's result is answered in a whole answer too
    tmsgs = msgs + [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
                    {"role": "tool", "content": "sunny, 21 C"}]
    w = json.loads(post("/api/chat", {"model": "llama3.2", "messages": tmsgs, "stream": False}))["message"]["content"]
    ok("Tool said: sunny, 21 C" in w, "tool result in a whole answer: %r" % w)
    # embedding dimensions (OpenAI's and Ollama's)
    e = json.loads(post("/v1/embeddings", {"model": "nomic-embed-text", "input": "x", "dimensions": 64}))
    ok(len(e["data"][0]["embedding"]) == 64, "OpenAI dimensions: %d" % len(e["data"][0]["embedding"]))
    e = json.loads(post("/api/embed", {"model": "nomic-embed-text", "input": "x", "dimensions": 64}))
    ok(len(e["embeddings"][0]) == 64, "Ollama dimensions: %d" % len(e["embeddings"][0]))
finally:
    sim.kill()
    sim.wait()

summary()
