#!/usr/bin/env python3
"""The demo's shop API: a small HTTP server that answers every request
and reports what it received, one line per request.

    service.py PORTFILE LOG     the local build, on an ephemeral loopback
                                port (what `make demo` replays into)
    service.py --port 8080 LOG  the production build on a fixed port (what
                                demo.pcap was recorded from, record.sh)

The two builds answer alike except for one change the local build makes
on purpose, for the comparison to find: the price of an item (GET
/items/ID) is rounded up to the next quarter.
"""
import http.server
import json
import os
import re
import sys
import threading

PRICES = {"41": 9.99, "42": 12.4, "43": 30.0}


def answer(method, path, body, local):
    """The JSON document a request gets: (status, document)."""
    m = re.fullmatch(r"/catalog\?page=(\d+)", path)
    if m:
        page = int(m.group(1))
        items = [{"id": str(40 + page + i), "name": f"item {40 + page + i}"}
                 for i in range(3)]
        return 200, {"page": page, "items": items}
    m = re.fullmatch(r"/items/(\d+)", path)
    if m and method == "GET":
        price = PRICES.get(m.group(1), 1.0)
        if local:
            price = -(-price * 4 // 1) / 4  # the change under test
        return 200, {"id": m.group(1), "price": price, "currency": "EUR"}
    if path == "/orders" and method == "POST":
        return 201, {"order": 1001, "status": "accepted",
                     "bytes": len(body)}
    if path.endswith("/photo") and method == "PUT":
        return 200, {"stored": len(body)}
    if path == "/health":
        return 200, {"status": "ok"}
    return 404, {"error": "not found"}


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
        status, doc = answer(self.command, self.path, body, LOCAL)
        reply = json.dumps(doc).encode()
        self.send_response(status)
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
        portfile, LOCAL = None, False
    else:
        port, portfile, LOG = 0, sys.argv[1], sys.argv[2]
        LOCAL = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if portfile:
        tmp = portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(tmp, portfile)
    server.serve_forever()
