"""An HTTP proxy in front of an S3 server that injects faults, for the reliability tests.

Every request is forwarded to the upstream server unless a rule matches it first. A rule
matches a request whose path contains `path` (and whose method is `method`, when given), for
its first `times` matches (every match when `times` is absent), and does its `fault`:
  503       answers 503 SlowDown (throttling)
  500       answers 500 InternalError
  403       answers 403 AccessDenied
  reset     closes the connection with no answer
  hang      never answers (holds the connection)
  stall     forwards the request, sends the answer's headers and half its body, then holds
  garble    forwards the request and sends the answer whole, but with its body's middle
            bytes overwritten (a corrupted object, as a broken disk or proxy would give)
Every request is appended to CALLS.jsonl as {"method", "path", "fault"}.

usage: python3 fault_proxy.py --port PORT --upstream http://127.0.0.1:MOTO --rules RULES.json
                              --calls CALLS.jsonl
"""

import argparse
import http.client
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ERRORS = {
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "403": (403, "AccessDenied", "Access Denied"),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--rules", required=True)
    p.add_argument("--calls", required=True)
    args = p.parse_args()
    with open(args.rules) as f:
        rules = json.load(f)
    used = [0] * len(rules)
    lock = threading.Lock()
    up = urlparse(args.upstream)

    def fault_for(method, path):
        with lock:
            for i, r in enumerate(rules):
                if r["path"] in path and r.get("method", method) == method:
                    if "times" in r and used[i] >= r["times"]:
                        continue
                    used[i] += 1
                    return r["fault"]
        return None

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    chunk = self.rfile.read(size + 2)[:size]
                    out += chunk
                    if size == 0:
                        # trailers, until the blank line
                        while self.rfile.readline() not in (b"\r\n", b""):
                            pass
                        return out
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def handle_any(self):
            body = self.body()
            fault = fault_for(self.command, self.path)
            with open(args.calls, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path, "fault": fault}) + "\n")
            if fault in ERRORS:
                status, code, message = ERRORS[fault]
                xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                       f"<Message>{message}</Message></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)
                return
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault == "hang":
                time.sleep(600)
                return
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fault == "stall":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                time.sleep(600)
                return
            if fault == "garble" and data:
                middle = len(data) // 2
                data = data[:middle] + b"\x00" * min(16, len(data) - middle) + data[middle + 16:]
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
