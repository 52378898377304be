#!/usr/bin/env python3
"""Burst-start benchmark of live capture's kernel rings (docs/BENCHMARKS.md,
"Burst start").

    flock /tmp/tm-heavy.lock python3 bench/burst.py --tapmirror PATH \
        --tmsink PATH --latency PATH --connloop PATH [--runs 5] \
        [--only default,blocks-128MiB,...] [--shapes stream,conns] \
        [--config NAME='OPTIONS'] [--out FILE.json] [--list] \
        [--require-complete]

An idle `tapmirror capture -i lo --to :SINK` is hit by a sudden burst, the
way a load generator (wrk, redis-benchmark, pgbench) starts: nothing on
the port for a second, then everything at once. Per configuration (a set
of capture options) and burst shape it reports, over --runs runs:

  * kernel drops (--stats-json source.kernel_drops, and by ring), median
    and max;
  * idle RSS: the capture's VmRSS one second after it started, before any
    traffic (the rings are mapped and resident from the start);
  * peak RSS: process.peak_rss_bytes (VmHWM) from --stats-json;
  * whether every byte arrived at the mirror target;
  * the 1-minute load average before each run.

Shapes:

  stream  64 loopback connections opened and left idle for 500 ms, then
          2 Gbit/s of 1448-byte requests for 1 s on all of them at once
          (bench_latency gen; production is bench_latency serve, the
          mirror target bench_latency sink, which counts whole requests).
  conns   10,000 new connections of 2 KiB each, 200 at a time, as fast as
          the kernel takes them (bench_connloop into tmsink); the mirror
          target is a second tmsink: connections, bytes and FNV-1a hashes
          must equal production's.

Run it under `flock /tmp/tm-heavy.lock` so that no other heavy test shares
the machine, and read the load average next to the figures. Needs root
or CAP_NET_RAW. Only the Python 3 standard library is used.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import log, proc_status, raise_nofile, read_json, wait_file

MIB = 1024 * 1024

# name -> capture options. "default" is today's defaults (one block ring
# of 128 MiB); "two-rings-128MiB" the defaults before (a per-packet ring
# and a block ring, switching at 50,000 packets/s). The per-packet ring on
# lo takes 2 x --kernel-buffer of memory (a 128 KiB block per 64 KiB-plus
# frame).
CONFIGS = {
    "default": [],
    "two-rings-128MiB": ["--batch-above", "50000", "--kernel-buffer",
                         "128MiB"],
    "two-rings-32MiB": ["--batch-above", "50000", "--kernel-buffer",
                        "32MiB"],
    "blocks-128MiB": ["--batch-above", "0", "--kernel-buffer", "128MiB"],
    "blocks-100MB": ["--batch-above", "0", "--kernel-buffer", "100000000"],
    "blocks-64MiB": ["--batch-above", "0", "--kernel-buffer", "64MiB"],
    "blocks-48MiB": ["--batch-above", "0", "--kernel-buffer", "48MiB"],
    "blocks-32MiB": ["--batch-above", "0", "--kernel-buffer", "32MiB"],
    "blocks-16MiB": ["--batch-above", "0", "--kernel-buffer", "16MiB"],
}
ORDER = list(CONFIGS)


class CannotCapture(Exception):
    pass


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def loadavg1():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def stop(proc, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Burst:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="tm-burst-")

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, tag, what):
        p = os.path.join(self.tmp, "%s.%s" % (tag, what))
        if os.path.exists(p):
            os.unlink(p)
        return p

    def spawn_port(self, tag, what, cmd):
        pf = self.path(tag, what + ".port")
        proc = subprocess.Popen(cmd + ["--port-file", pf],
                                stdout=subprocess.DEVNULL,
                                preexec_fn=raise_nofile)
        return proc, int(wait_file(pf, proc))

    def capture(self, tag, port, to_port, extra):
        # NAME=VALUE words set the capture's environment, as env(1) does.
        env = dict(os.environ)
        opts = []
        for w in extra:
            k, eq, v = w.partition("=")
            if eq and k and not k.startswith("-") and k.isupper():
                env[k] = v
            else:
                opts.append(w)
        extra = opts
        stats = self.path(tag, "stats.json")
        out = self.path(tag, "pcap")
        cmd = [self.a.tapmirror, "capture", "-i", "lo", "-p", str(port),
               "-o", out, "--stats-json", stats, "-q", "--to",
               ":%d" % to_port] + list(extra)
        err = open(self.path(tag, "stderr"), "w+")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                env=env, preexec_fn=raise_nofile)
        proc.err = err
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err.seek(0)
                why = err.read()[-300:]
                if "not permitted" in why:
                    raise CannotCapture(why.strip())
                raise RuntimeError("capture failed: " + why)
            if os.path.exists(out) and os.path.getsize(out) >= 24:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("capture did not start")
            time.sleep(0.01)
        # Idle: the rings are open and nothing is on the port yet.
        time.sleep(1.0)
        proc.idle_rss = proc_status(proc.pid).get("VmRSS")
        return proc, stats, out

    def end_capture(self, proc, stats, out):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.err.seek(0)
        warnings = proc.err.read().strip()
        proc.err.close()
        st = read_json(stats) or {}
        if os.path.exists(out):
            os.unlink(out)
        return proc.returncode, st, warnings

    def shape_stream(self, tag, extra):
        a = self.a
        procs = []
        try:
            svc, sport = self.spawn_port(tag, "svc", [a.latency, "serve",
                                                      "--port", "0"])
            procs.append(svc)
            lout = self.path(tag, "lat.json")
            sink, lport = self.spawn_port(
                tag, "sink", [a.latency, "sink", "--out", lout, "--size",
                              "1448"])
            procs.append(sink)
            cap, stats, out = self.capture(tag, sport, lport, extra)
            procs.append(cap)
            rate = int(a.gbps * 1e9 / 8 / 1448)
            gen = subprocess.run(
                [a.latency, "gen", "--port", str(sport), "--rate", str(rate),
                 "--seconds", str(a.seconds), "--conns", "64", "--size",
                 "1448"], stdout=subprocess.PIPE, check=True)
            sent = json.loads(gen.stdout)
            time.sleep(0.5)
            rc, st, warnings = self.end_capture(cap, stats, out)
            stop(sink)
            lat = read_json(lout) or {}
            complete = (lat.get("requests") == sent.get("sent")
                        and lat.get("bad") == 0)
            return st, rc, cap.idle_rss, complete, warnings, {
                "sent_requests": sent.get("sent"),
                "arrived_requests": lat.get("requests"),
                "achieved_gbps": sent.get("rate", 0) * 1448 * 8 / 1e9}
        finally:
            for p in procs:
                stop(p)

    def shape_conns(self, tag, extra):
        a = self.a
        n = a.conns
        procs = []
        try:
            pman = self.path(tag, "prod.json")
            prod, pport = self.spawn_port(
                tag, "prod", [a.tmsink, "--manifest", pman, "--quiet"])
            procs.append(prod)
            mman = self.path(tag, "mirror.json")
            mirror, mport = self.spawn_port(
                tag, "mirror", [a.tmsink, "--manifest", mman, "--quiet",
                                "--expect", str(n), "--timeout", "60s"])
            procs.append(mirror)
            cap, stats, out = self.capture(tag, pport, mport, extra)
            procs.append(cap)
            subprocess.run([a.connloop, "--port", str(pport), "--count",
                            str(n), "--size", str(a.conn_size),
                            "--concurrency", "200"],
                           stdout=subprocess.DEVNULL, check=True)
            # The mirror sink exits once it has every connection (or at its
            # timeout); a drop leaves a connection short, and it waits.
            deadline = time.monotonic() + 20
            while mirror.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            rc, st, warnings = self.end_capture(cap, stats, out)
            stop(mirror)
            stop(prod)
            pm = read_json(pman) or {}
            mm = read_json(mman) or {}

            def conns(m):
                return sorted((c["bytes"], c["fnv64"], c["complete"])
                              for c in m.get("connections", []))
            pc, mc = conns(pm), conns(mm)
            complete = len(pc) == n and pc == mc
            return st, rc, cap.idle_rss, complete, warnings, {
                "production_bytes": pm.get("totals", {}).get("bytes"),
                "mirror_bytes": mm.get("totals", {}).get("bytes"),
                "mirror_connections": len(mc)}
        finally:
            for p in procs:
                stop(p)

    def one(self, name, shape, i):
        extra = CONFIGS[name] + shlex.split(self.a.capture_args)
        tag = "%s-%s-%d" % (name, shape, i)
        load = loadavg1()
        st, rc, idle, complete, warnings, more = getattr(
            self, "shape_" + shape)(tag, extra)
        src = st.get("source", {})
        res = {
            "config": name, "shape": shape, "run": i, "load1": load,
            "exit": rc,
            "kernel_drops": src.get("kernel_drops"),
            "kernel_drops_by_ring": src.get("kernel_drops_by_ring"),
            "delivery_switches": src.get("delivery_switches"),
            "handover_lost": src.get("handover_lost"),
            "idle_rss_bytes": idle,
            "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
            "complete": complete,
            "warnings": warnings[-300:] if warnings else "",
        }
        res.update(more)
        log("  %-18s %-6s #%d drops %s %s switches %s idle %.1f MiB peak "
            "%.1f MiB complete %s load %.2f"
            % (name, shape, i, res["kernel_drops"],
               json.dumps(res["kernel_drops_by_ring"]),
               res["delivery_switches"], (idle or 0) / MIB,
               (res["peak_rss_bytes"] or 0) / MIB, complete, load or 0))
        return res


def summarize(runs, names, shapes):
    rows = []
    for name in names:
        for shape in shapes:
            rs = [r for r in runs if r["config"] == name
                  and r["shape"] == shape]
            if not rs:
                continue
            drops = [r["kernel_drops"] for r in rs
                     if r["kernel_drops"] is not None]
            rows.append({
                "config": name, "shape": shape,
                "options": " ".join(CONFIGS[name]) or "(defaults)",
                "runs": len(rs),
                "drops_median": median(drops),
                "drops_max": max(drops) if drops else None,
                "incomplete_runs": sum(1 for r in rs if not r["complete"]),
                "idle_rss_mib": median([r["idle_rss_bytes"] / MIB for r in rs
                                        if r["idle_rss_bytes"]]),
                "peak_rss_mib": median([r["peak_rss_bytes"] / MIB
                                        for r in rs if r["peak_rss_bytes"]]),
                "load1": median([r["load1"] for r in rs]),
            })
    return rows


def print_rows(rows):
    print("| config | options | shape | drops median / max | runs "
          "incomplete | idle RSS MiB | peak RSS MiB | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | `%s` | %s | %s / %s | %d of %d | %.0f | %.0f | %.2f |"
              % (r["config"], r["options"], r["shape"],
                 "-" if r["drops_median"] is None else "%g" % r["drops_median"],
                 "-" if r["drops_max"] is None else r["drops_max"],
                 r["incomplete_runs"], r["runs"], r["idle_rss_mib"] or 0,
                 r["peak_rss_mib"] or 0, r["load1"] or 0))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.path.join(os.path.dirname(here), "build", "default")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tapmirror", default=os.path.join(build, "tapmirror"))
    ap.add_argument("--tmsink", default=os.path.join(build, "tools",
                                                     "tmsink"))
    ap.add_argument("--latency", default=os.path.join(build, "bench",
                                                      "bench_latency"))
    ap.add_argument("--connloop", default=os.path.join(build, "bench",
                                                       "bench_connloop"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default=None,
                    help="configurations, comma-separated (default all)")
    ap.add_argument("--config", action="append", default=[],
                    metavar="NAME=OPTIONS",
                    help="add a configuration: capture options in shell "
                         "syntax (NAME=VALUE words set its environment)")
    ap.add_argument("--shapes", default="stream,conns")
    ap.add_argument("--gbps", type=float, default=2.0,
                    help="stream shape: the burst's rate (default 2)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="stream shape: the burst's length (default 1)")
    ap.add_argument("--conns", type=int, default=10000,
                    help="conns shape: connections (default 10000)")
    ap.add_argument("--conn-size", type=int, default=2048,
                    help="conns shape: bytes per connection (default 2048)")
    ap.add_argument("--capture-args", default="",
                    help="extra capture options for every configuration")
    ap.add_argument("--out", default=None, help="write the results as JSON")
    ap.add_argument("--require-complete", action="store_true",
                    help="exit 1 unless every run delivered every byte "
                         "(the test suite's smoke run)")
    ap.add_argument("--list", action="store_true",
                    help="print the configurations and exit")
    a = ap.parse_args()
    for c in a.config:
        name, _, opts = c.partition("=")
        CONFIGS[name] = shlex.split(opts)
        if name not in ORDER:
            ORDER.append(name)
    if a.list:
        for name in ORDER:
            print("%-18s %s" % (name, " ".join(CONFIGS[name])))
        return 0
    names = a.only.split(",") if a.only else ORDER
    for n in names:
        if n not in CONFIGS:
            ap.error("unknown configuration " + n)
    shapes = [s for s in a.shapes.split(",") if s]
    b = Burst(a)
    runs = []
    try:
        # Rounds rather than blocks: a configuration's runs spread over
        # the whole measurement, so a noisy minute hits all of them alike.
        for i in range(a.runs):
            for name in names:
                for shape in shapes:
                    runs.append(b.one(name, shape, i))
    except CannotCapture as e:
        log("skipped: " + str(e))
        return 77
    finally:
        b.cleanup()
    rows = summarize(runs, names, shapes)
    print_rows(rows)
    if a.out:
        with open(a.out, "w") as fp:
            json.dump({"rows": rows, "runs": runs, "args": vars(a)}, fp,
                      indent=1)
    if a.require_complete:
        bad = [r for r in runs if not r["complete"] or r["exit"] != 0
               or r["idle_rss_bytes"] is None]
        for r in bad:
            log("incomplete: %s %s #%d exit %s %s" % (
                r["config"], r["shape"], r["run"], r["exit"],
                r["warnings"]))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
