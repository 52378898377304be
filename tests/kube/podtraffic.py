"""Real captures for the mirror tests: TCP traffic between a client and a
server in a network namespace of the test's own (a "pod" at 10.244.K.11
behind a veth pair), recorded by tcpdump -i any inside that namespace,
exactly as the tap records a pod. Needs root."""
import os
import random
import ssl
import socket
import subprocess
import threading
import time

SERVER = r'''
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("ready", flush=True)
def h(c):
    while c.recv(65536): pass
    c.sendall(b"ok"); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
'''


def can_record():
    """(ok, reason)."""
    if os.geteuid() != 0:
        return False, "needs root to record pod traffic in a network namespace"
    for tool in ("ip", "tcpdump"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"],
                          capture_output=True).returncode != 0:
            return False, f"{tool} is not installed"
    return True, ""


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def record(path, pod_index, clients=6, seed=1, port=8080, max_size=120000,
           http=False):
    """Records `clients` connections to 10.244.K.11:PORT (K = pod_index+1)
    from 10.244.K.10; returns (server_ip, [client payload bytes]). The
    tests compare against the payloads, so a recording that tcpdump itself
    dropped packets from is made again. With `http`, the pod is an HTTP/1.1
    JSON service (HTTP_SERVER) and each client a keep-alive http.client
    asking for HTTP_PATHS; the payloads are then those paths."""
    for attempt in range(4):
        ip, payloads, dropped = _record(path, pod_index, clients, seed, port,
                                        max_size, http)
        if dropped == 0:
            return ip, (list(HTTP_PATHS) * clients if http else payloads)
    raise RuntimeError(f"tcpdump kept dropping packets ({dropped})")


# The pod's HTTP service for record(http=True): JSON answers a shop would
# give; http_answer() is the same function, for the tests' local copies.
HTTP_PATHS = ("/items/1", "/items/2", "/health")
HTTP_SERVER = r'''
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps(ANSWER(self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("ready", flush=True)
s.serve_forever()
'''


def http_answer(path, price=12.5):
    """What the pod's HTTP service answers to GET `path`."""
    if path.startswith("/items/"):
        return {"id": path.rsplit("/", 1)[1], "price": price,
                "currency": "EUR"}
    return {"status": "ok"}


def _http_server_program():
    import inspect
    return (inspect.getsource(http_answer) +
            HTTP_SERVER.replace("ANSWER(", "http_answer("))


def _talk_http(client_ip, server_ip, port):
    import http.client
    c = http.client.HTTPConnection(server_ip, port, timeout=20,
                                   source_address=(client_ip, 0))
    for path in HTTP_PATHS:
        c.request("GET", path)
        c.getresponse().read()
    c.close()


def _remove_leftovers():
    """Removes the namespaces and veths of recordings whose test process
    died before cleaning up (killed, say): a stale veth holding the same
    client address would route the connections into the wrong namespace."""
    names = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                           text=True).stdout
    for line in names.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if not (name.startswith("tka") and name[3:].isdigit()):
            continue
        tag = name[3:]
        pid = int(tag[:-1] or 0)
        if pid and os.path.exists(f"/proc/{pid}"):
            continue        # its run is still going
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"tmk{tag}"], capture_output=True)


def _record(path, pod_index, clients, seed, port, max_size, http=False):
    _remove_leftovers()
    k = pod_index + 1
    tag = f"{os.getpid()}{k}"   # tka + 7 + 1 characters fit IFNAMSIZ
    ns, va, vb = f"tmk{tag}", f"tka{tag}", f"tkb{tag}"
    client_ip, server_ip = f"10.244.{k}.10", f"10.244.{k}.11"
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randint(1, max_size)) for _ in range(clients)]
    _run("ip", "netns", "add", ns)
    server = tcpdump = None
    try:
        _run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        _run("ip", "link", "set", vb, "netns", ns)
        _run("ip", "addr", "add", f"{client_ip}/24", "dev", va)
        _run("ip", "link", "set", va, "up")
        _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{server_ip}/24",
             "dev", vb)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", vb, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        program = _http_server_program() if http else SERVER
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c",
                                   program, server_ip, str(port)],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        tcpdump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump",
                                    "--immediate-mode", "-B", "65536", "-i",
                                    "any", "-U", "-w", path, "tcp", "port",
                                    str(port)],
                                   stderr=subprocess.PIPE, text=True)
        seen = ""
        while "listening on" not in seen:
            line = tcpdump.stderr.readline()
            assert line, f"tcpdump did not start: {seen}"
            seen += line
        time.sleep(0.2)
        threads = []
        for data in payloads:
            def send(d=data):
                if http:
                    _talk_http(client_ip, server_ip, port)
                    return
                c = socket.socket()
                c.settimeout(20)
                c.bind((client_ip, 0))
                c.connect((server_ip, port))
                c.sendall(d)
                c.shutdown(socket.SHUT_WR)
                while c.recv(100):
                    pass
                c.close()
            th = threading.Thread(target=send)
            th.start()
            threads.append(th)
            time.sleep(0.01)
        for th in threads:
            th.join(30)
        time.sleep(0.5)
    finally:
        dropped = -1
        if tcpdump is not None:
            tcpdump.send_signal(2)
            tail = tcpdump.stderr.read()
            tcpdump.wait(10)
            tcpdump.stderr.close()
            for line in tail.splitlines():
                if "dropped by kernel" in line:
                    dropped = int(line.split()[0])
        if server is not None:
            server.kill()
            server.wait()
            server.stdout.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", va], capture_output=True)
    return server_ip, payloads, dropped


def split_records(data, parts):
    """Splits a pcap into `parts` captures at record boundaries, each with
    the file header: what tcpdump restarted mid-run would write."""
    header, recs, pos = data[:24], [], 24
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8:pos + 12], "little")
        recs.append(data[pos:pos + 16 + caplen])
        pos += 16 + caplen
    cut = [len(recs) * i // parts for i in range(parts + 1)]
    return [header + b"".join(recs[cut[i]:cut[i + 1]]) for i in range(parts)]


PROXY = r'''
import socket, ssl, sys, threading
cert, key, listen_port, app_ip, app_port, source = sys.argv[1:7]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
# TLS 1.2: no session tickets after the handshake for the client to leave
# unread (its close would then reset the connection mid-request).
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(listen_port))); s.listen(64)
print("ready", flush=True)
def h(c):
    t = ctx.wrap_socket(c, server_side=True)
    data = b""
    try:
        while True:
            d = t.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    # The sidecar's hop: plaintext to the application, from `source`.
    a = socket.socket(); a.bind((source, 0)); a.connect((app_ip, int(app_port)))
    a.sendall(data); a.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        d = a.recv(65536)
        if not d:
            break
        answer += d
    a.close()
    try:
        t.sendall(answer); t.close()
    except OSError:
        pass
while True:
    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
'''


def can_record_mesh():
    ok, why = can_record()
    if ok and subprocess.run(["sh", "-c", "command -v iptables && "
                              "command -v openssl"],
                             capture_output=True).returncode != 0:
        return False, "iptables or openssl is not installed"
    return ok, why


def record_mesh(path, pod_index, tmpdir, hop_from="127.0.0.6", clients=4,
                seed=7, port=8080, iface="any"):
    """_record_mesh(), made again while tcpdump itself dropped packets
    (as record() does): the tests compare against the payloads."""
    for attempt in range(4):
        ip, payloads, dropped = _record_mesh(path, pod_index, tmpdir,
                                             hop_from, clients, seed, port,
                                             iface)
        if dropped == 0:
            return ip, payloads
    raise RuntimeError(f"tcpdump kept dropping packets ({dropped})")


def _record_mesh(path, pod_index, tmpdir, hop_from, clients, seed, port,
                 iface):
    """A mesh pod: clients at 10.244.K.10 speak TLS to 10.244.K.11:PORT,
    which iptables redirects (as Istio's init container does) to a
    TLS-terminating proxy on 15006; the proxy forwards each request in
    plaintext to the application on 10.244.K.11:PORT from `hop_from`
    (127.0.0.6: Istio; the pod's address: Linkerd). tcpdump -i IFACE
    records port PORT in the pod: "any" as the tap does behind a sidecar,
    "lo" as it does in Istio's ambient mode, where ztunnel delivers the
    plaintext over the loopback from a non-loopback address (the client's;
    here the pod's, with hop_from="pod"). Returns (server_ip, [plaintexts],
    packets tcpdump dropped)."""
    cert, key = os.path.join(tmpdir, "c.pem"), os.path.join(tmpdir, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                    "/CN=web", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    _remove_leftovers()
    k = pod_index + 1
    tag = f"{os.getpid()}{k}"
    ns, va, vb = f"tmk{tag}", f"tka{tag}", f"tkb{tag}"
    client_ip, server_ip = f"10.244.{k}.10", f"10.244.{k}.11"
    source = server_ip if hop_from == "pod" else hop_from
    rng = random.Random(seed)
    payloads = [b"POST /orders/%d HTTP/1.1\r\nHost: web\r\nContent-Length: "
                b"%d\r\n\r\n" % (i, n) + rng.randbytes(n)
                for i, n in enumerate(rng.randint(1, 30000)
                                      for _ in range(clients))]
    _run("ip", "netns", "add", ns)
    procs = []
    tcpdump = None
    try:
        _run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        _run("ip", "link", "set", vb, "netns", ns)
        _run("ip", "addr", "add", f"{client_ip}/24", "dev", va)
        _run("ip", "link", "set", va, "up")
        _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{server_ip}/24",
             "dev", vb)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", vb, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        _run("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A",
             "PREROUTING", "-i", vb, "-p", "tcp", "--dport", str(port), "-j",
             "REDIRECT", "--to-ports", "15006")
        for argv in (["python3", "-c", SERVER, "0.0.0.0", str(port)],
                     ["python3", "-c", PROXY, cert, key, "15006", server_ip,
                      str(port), source]):
            p = subprocess.Popen(["ip", "netns", "exec", ns, *argv],
                                 stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout.readline().strip() == "ready"
        tcpdump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump",
                                    "--immediate-mode", "-B", "65536", "-i",
                                    iface, "-U", "-w", path, "tcp", "port",
                                    str(port)],
                                   stderr=subprocess.PIPE, text=True)
        seen = ""
        while "listening on" not in seen:
            line = tcpdump.stderr.readline()
            assert line, f"tcpdump did not start: {seen}"
            seen += line
        time.sleep(0.2)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for data in payloads:
            c = socket.socket()
            c.settimeout(20)
            c.bind((client_ip, 0))
            c.connect((server_ip, port))
            tc = ctx.wrap_socket(c)
            tc.sendall(data)
            tc.shutdown(socket.SHUT_WR)
            try:    # the answer, or the end (a ragged one is no matter)
                while tc.recv(100):
                    pass
            except (ssl.SSLError, OSError):
                pass
            tc.close()
        time.sleep(2)
    finally:
        dropped = -1
        if tcpdump is not None:
            tcpdump.send_signal(2)
            tail = tcpdump.stderr.read()
            tcpdump.wait(10)
            tcpdump.stderr.close()
            for line in tail.splitlines():
                if "dropped by kernel" in line:
                    dropped = int(line.split()[0])
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", va], capture_output=True)
    return server_ip, payloads, dropped
