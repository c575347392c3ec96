"""A local OpenAI-compatible chat-completions server for the provider tests: real HTTP on loopback,
canned completions, and slow, failing, garbage and schema-refusing modes. It keeps every request
body it received, so tests can assert on what left the service."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self):
        self.received = []  # (headers, body dict)
        self.mode = "ok"  # ok | slow | fail | garbage | refuse_schema
        self.delay = 30.0
        self.reply = lambda body: {}
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def bodies(self):
        return [json.dumps(body, ensure_ascii=False) for _, body in self.received]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.received.append((dict(self.headers), body))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if fake.mode == "slow":
                    fake.release.wait(fake.delay)
                if fake.mode == "fail":
                    return self._send(500, {"error": {"message": "the model is overloaded"}})
                if fake.mode == "garbage":
                    return self._send(
                        200, {"choices": [{"message": {"content": "Sure! Here you go: {not json"}}]}
                    )
                if (
                    fake.mode == "refuse_schema"
                    and body.get("response_format", {}).get("type") == "json_schema"
                ):
                    return self._send(
                        400, {"error": {"message": "response_format json_schema is not supported"}}
                    )
                content = json.dumps(fake.reply(body))
                return self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                    },
                )

        return Handler
