#!/usr/bin/env python3
"""The real HTTP/1.1 service of the netns tests (run inside the service
namespace with `ip netns exec`).

    nsserver.py ADDRESS PORT

Keep-alive connections, one thread each (the standard library's
ThreadingHTTPServer). POST and PUT read the Content-Length body and answer
with its length and SHA-256, so the client can check that the service
received every byte; GET /?size=N answers N bytes. Prints
"listening on ADDRESS PORT" once it accepts connections.
"""
import hashlib
import http.server
import json
import socket
import socketserver
import sys
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "nsserver/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _answer(self, body, ctype="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        size = int(query.get("size", ["64"])[0])
        self._answer(b"g" * size, "application/octet-stream")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        left = length
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                break
            digest.update(data)
            left -= len(data)
        if left:
            self.close_connection = True
            return
        self._answer(json.dumps({"len": length,
                                 "sha256": digest.hexdigest()}).encode())

    do_PUT = do_POST


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self):
        # No getfqdn(): there is no resolver inside the namespace.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    server_class = type("Server", (Server,), {"address_family": family})
    httpd = server_class((addr, port), Handler)
    print(f"listening on {addr} {port}", flush=True)
    httpd.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
