#!/usr/bin/env python3
"""A stand-in SGLang / vLLM server for tests/test_capture.cpp, on 127.0.0.1 with a free port.

Speaks each engine's request/response format for the routed-experts feature (docs/capture.md):
SGLang POST /generate with input_ids -> meta_info.routed_experts (base64 of raw little-endian
integers [prompt + output - 1, layers, top_k], meta_info.routed_experts_dtype when not int32);
vLLM POST /v1/completions with a token-id prompt -> choices[0].routed_experts (base64 .npy
[tokens, layers, top_k]), optionally prompt_routed_experts separately. Payloads are written
with NumPy. Routing is random with a seed taken from the prompt, so the same request gets the
same routing. After every good answer, --counts FILE holds the expected aggregates of all
answered rows: per checkpoint layer and expert, times selected and times at rank 0.
--mode makes bad answers: wrong_rows, bad_expert, dense_nonzero, truncated, fail_once (HTTP
500 once, then good), no_feature (no routing field), hang (answers after 30 s).

For tests/test_ui_chat_server.cpp it also speaks the OpenAI-compatible streaming chat of both
engines: POST /v1/chat/completions (and /v1/completions) with "stream": true answers
server-sent events ("data: {chunk}" lines, then "data: [DONE]"), one word of a fixed text per
chunk, max_tokens chunks, --chat-delay seconds apart; it never routes (the routing comes from
/generate or a non-streaming /v1/completions). --routing-log FILE appends, per routing
answer, {"prompt_ids", "moe_layers", "ids": [rows][moe layer][k]} as sent.
"""
import argparse
import base64
import io
import json
import os
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["sglang", "vllm"], required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--layout", choices=["absolute", "moe", "compact"], default="absolute")
    ap.add_argument("--dtype", default="int32")
    ap.add_argument("--split-prompt", action="store_true", help="vLLM: prompt rows in prompt_routed_experts")
    ap.add_argument("--counts")
    ap.add_argument("--chat-delay", type=float, default=0.0)
    ap.add_argument("--routing-log")
    ap.add_argument("--save", help="append {id, prompt_ids, response} per good answer (for moewb import)")
    a = ap.parse_args()

    cfg = json.load(open(a.config))
    L = cfg["num_hidden_layers"]
    E = cfg["n_routed_experts"]
    K = cfg["num_experts_per_tok"]
    V = cfg["vocab_size"]
    dense = cfg.get("first_k_dense_replace", 0)
    freq = cfg.get("moe_layer_freq", 1)
    moe_layers = [l for l in range(L) if l >= dense and l % freq == 0]
    M = len(moe_layers)
    lock = threading.Lock()
    state = {"failed": False, "requests": 0}
    counts = np.zeros((L, E), dtype=np.int64)
    rank0 = np.zeros((L, E), dtype=np.int64)
    tokens = [0]

    def routing(prompt, rows):
        seed = zlib.crc32(np.asarray(prompt, dtype=np.int32).tobytes())
        rng = np.random.default_rng(seed)
        ids = np.argsort(rng.random((rows, M, E)), axis=-1)[..., :K].astype(np.int64)  # [rows, M, K] distinct
        if a.layout == "compact":
            full = ids
        else:
            full = np.zeros((rows, L, K), dtype=np.int64)
            if a.layout == "absolute":
                full[:, moe_layers, :] = ids
            else:
                full[:, :M, :] = ids
        return ids, full

    def b64(arr):
        return base64.b64encode(arr).decode("ascii")

    def npy_b64(arr):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return b64(buf.getvalue())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/get_server_info" and a.engine == "sglang":
                self.send(200, {"version": "0.5.test-sglang", "model_path": "test"})
            elif self.path == "/version":
                self.send(200, {"version": "0.11.test-vllm" if a.engine == "vllm" else "0.5.test-sglang"})
            elif self.path == "/v1/models" and a.engine == "vllm":
                self.send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
            else:
                self.send(404, {"detail": "Not Found"})

        def stream_chat(self, req, chat):
            model = req.get("model")
            if a.engine == "vllm" and model != "test-model":
                self.send(404, {"object": "error", "message": "The model `%s` does not exist." % model,
                                "type": "NotFoundError", "code": 404})
                return
            words = "The stand-in server answers: experts route every token .".split(" ")
            n = int(req.get("max_tokens") or 16)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            obj = "chat.completion.chunk" if chat else "text_completion"

            def event(piece, finish):
                choice = {"index": 0, "finish_reason": finish, "logprobs": None}
                if chat:
                    choice["delta"] = {"content": piece} if piece is not None else {}
                else:
                    choice["text"] = piece or ""
                chunk = {"id": "chat-test", "object": obj, "created": 0, "model": model, "choices": [choice]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()

            try:
                if chat:
                    chunk = {"id": "chat-test", "object": obj, "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                for i in range(n):
                    event((" " if i else "") + words[i % len(words)], None)
                    if a.chat_delay:
                        time.sleep(a.chat_delay)
                event(None, "length")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (Stop)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(n))
            if self.path == "/v1/chat/completions" or (self.path == "/v1/completions" and req.get("stream")):
                self.stream_chat(req, self.path == "/v1/chat/completions")
                return
            want = "/generate" if a.engine == "sglang" else "/v1/completions"
            if self.path != want:
                self.send(404, {"detail": "Not Found"})
                return
            if a.mode == "hang":
                time.sleep(30)
            with lock:
                state["requests"] += 1
                if a.mode == "fail_once" and not state["failed"]:
                    state["failed"] = True
                    self.send(500, {"object": "error", "message": "internal error (test)", "code": 500})
                    return
            if a.engine == "sglang":
                prompt = req["input_ids"]
                max_new = req["sampling_params"]["max_new_tokens"]
                assert req.get("return_routed_experts") is True
            else:
                prompt = req["prompt"]
                max_new = req["max_tokens"]
                assert req.get("model") == "test-model"
            P = len(prompt)
            outputs = [(prompt[-1] + j + 1) % V for j in range(max_new)]
            O = len(outputs)
            rows = P + O - 1
            ids, full = routing(prompt, rows)
            if a.mode == "bad_expert":
                full[min(1, rows - 1), moe_layers[0] if a.layout == "absolute" else 0, 0] = E
            if a.mode == "dense_nonzero":
                full[min(1, rows - 1), 0, :] = np.arange(1, K + 1)
            if a.mode == "wrong_rows":
                full = full[:-1]
            payload = full.astype(a.dtype)
            if a.engine == "sglang":
                meta = {"prompt_tokens": P, "completion_tokens": O, "cached_tokens": 0,
                        "finish_reason": {"type": "length", "length": O}}
                if a.mode != "no_feature":
                    s = b64(payload.tobytes())
                    meta["routed_experts"] = s[:-5] if a.mode == "truncated" else s
                    if a.dtype != "int32":
                        meta["routed_experts_dtype"] = a.dtype
                resp = {"text": "x" * O, "output_ids": outputs, "meta_info": meta}
            else:
                choice = {"index": 0, "text": "x" * O, "finish_reason": "length", "token_ids": outputs,
                          "routed_experts": None}
                resp = {"id": "cmpl-test", "object": "text_completion", "model": "test-model",
                        "choices": [choice],
                        "usage": {"prompt_tokens": P, "completion_tokens": O, "total_tokens": P + O}}
                if a.mode != "no_feature":
                    if a.split_prompt:
                        resp["prompt_routed_experts"] = npy_b64(payload[:P])
                        choice["routed_experts"] = npy_b64(payload[P:])
                    else:
                        s = npy_b64(payload)
                        choice["routed_experts"] = s[:-5] if a.mode == "truncated" else s
            with lock:
                if a.routing_log and a.mode != "no_feature":
                    with open(a.routing_log, "a") as f:
                        f.write(json.dumps({"prompt_ids": prompt, "moe_layers": moe_layers,
                                            "ids": ids.tolist()}) + "\n")
                if a.mode in ("ok", "fail_once"):
                    for m, l in enumerate(moe_layers):
                        counts[l] += np.bincount(ids[:, m, :].ravel(), minlength=E)
                        rank0[l] += np.bincount(ids[:, m, 0].ravel(), minlength=E)
                    tokens[0] += rows
                    if a.counts:
                        tmp = a.counts + ".tmp"
                        with open(tmp, "w") as f:
                            json.dump({"tokens": tokens[0], "requests": state["requests"],
                                       "counts": {str(l): counts[l].tolist() for l in moe_layers},
                                       "rank0": {str(l): rank0[l].tolist() for l in moe_layers}}, f)
                        os.replace(tmp, a.counts)
                    if a.save:
                        with open(a.save, "a") as f:
                            f.write(json.dumps({"id": "req-%d" % state["requests"], "prompt_ids": prompt,
                                                "response": resp}) + "\n")
            self.send(200, resp)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, a.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
