"""A real HTTP receiver on 127.0.0.1 for the webhook tests: it records each request (headers,
body), answers with the statuses it is told (one per request, then the last again), and can be
slow or down. A receiver that dedupes by `webhook-id` keeps `processed`."""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


@dataclass
class Receiver:
    statuses: list = field(default_factory=lambda: [200])
    delay: float = 0.0
    secret: str | None = None
    received: list = field(default_factory=list)
    processed: dict = field(default_factory=dict)  # webhook-id → payload, once each
    redirect_to: str | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                if 200 <= status < 300 and receiver.secret:
                    payload = Webhook(receiver.secret).verify(body, headers)  # raises if forged
                    receiver.processed.setdefault(headers["webhook-id"], payload)
                self.send_response(status)
                if 300 <= status < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fund"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
