#!/usr/bin/env python3
"""The demo's local service: a small HTTP server that answers every
request and reports what it received, one line per request.

    service.py PORTFILE LOG     listen on an ephemeral loopback port
    service.py --port 8080 LOG  listen on a fixed port (to record traffic)
"""
import http.server
import json
import os
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        with LOCK:
            with open(LOG, "a") as f:
                f.write(json.dumps({"peer": peer, "method": self.command,
                                    "path": self.path, "body": len(body),
                                    "preview": body[:40].decode(
                                        "utf-8", "replace")}) + "\n")
        reply = json.dumps({"ok": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = handle_one

    def log_message(self, fmt, *args):
        pass


LOCK = threading.Lock()

if __name__ == "__main__":
    if sys.argv[1] == "--port":
        port, LOG = int(sys.argv[2]), sys.argv[3]
        portfile = None
    else:
        port, portfile, LOG = 0, sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if portfile:
        tmp = portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(tmp, portfile)
    server.serve_forever()
