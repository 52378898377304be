#!/usr/bin/env python3
"""The client traffic recorded in demo.pcap: a few shoppers talking to a
shop's API on 127.0.0.1:8080 (see record.sh)."""
import http.client
import json
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080


def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


# A browser-like client: one keep-alive connection, several requests.
c = conn()
for path in ("/catalog?page=1", "/catalog?page=2", "/items/42"):
    c.request("GET", path, headers={"User-Agent": "demo-shopper/1.0"})
    c.getresponse().read()
c.close()

# An order: a JSON body.
c = conn()
order = {"customer": "ada@example.com", "items": [{"sku": "42", "qty": 2}]}
c.request("POST", "/orders", body=json.dumps(order),
          headers={"Content-Type": "application/json"})
c.getresponse().read()
c.close()

# A photo upload large enough to span many TCP segments.
photo = bytes((i * 7 + 3) % 256 for i in range(120_000))
c = conn()
c.request("PUT", "/items/42/photo", body=photo,
          headers={"Content-Type": "image/jpeg"})
c.getresponse().read()
c.close()

# A health check.
c = conn()
c.request("GET", "/health")
c.getresponse().read()
c.close()
