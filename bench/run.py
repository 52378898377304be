#!/usr/bin/env python3
"""tapmirror benchmark suite (docs/BENCHMARKS.md).

    python3 bench/run.py --tapmirror PATH --tmgen PATH --tmsink PATH \
        --pcapread PATH [--latency PATH] [--connloop PATH] [--runs 5] \
        [--quick] [--only W1,W2,H1,...] [--out docs/bench-results.json]

Replay workloads (W1-W4): each capture is generated once by tmgen into a
scratch directory outside the repository (--scratch, default
$TMPDIR/tapmirror-bench; reused while its tmgen options are unchanged;
skipped when the disk cannot hold it). Then, per workload:

  * one *checked* run: tmsink hashes every connection and its manifest is
    compared with tmgen's, flow by flow (bytes and FNV-1a), plus the stats
    JSON's counters (flows, bytes delivered, gaps, nothing dropped or left
    unfinished);
  * --runs rounds of, alternately, the references and a *timed* tapmirror
    run with tmsink --no-hash as the target (bytes and completions still
    checked), and the same replay with --turns off (stream mode). Where
    the capture's server answered (W2: tmgen --response), every target
    answers the same way (tmsink --respond N --respond-after REQUEST):
      - the bare libpcap read loop (bench_pcapread) over the same file;
      - tcpflow -Fk -r FILE -o DIR into tmpfs (if installed);
      - the socket floor (bench_connloop): the same connections and client
        bytes written by a minimal C client straight into tmsink, with no
        capture read: what the kernel and the receiver cost.

  * from the references, the workload's machine bound (machine_bound()):
    the fastest any replay could be on this machine, printed against the
    targets after the main table.

A timed run is the wall time from the spawn until both tapmirror and
tmsink (--expect N) have exited; CPU is tapmirror's user+sys from wait4();
memory is the stats JSON's process.peak_rss_bytes (VmHWM; ru_maxrss would
include the Python parent's pages from before the exec).

Keep-alive HTTP/1.1 workloads (H1, H2): bench_httpgen writes N
connections x M request/response exchanges, both directions, each request
sent after the previous answer; bench_httptarget answers every request
with the response the capture holds for it (but for the Date value) and
counts connections, requests and bytes. Each workload times two variants
of `tapmirror replay` in the same run, interleaved (H1: plain and
--compare, target ratio >= 0.5; H2: plain and a filter with header
rewrites, >= 0.70), plus a floor (bench_httpfloor speaking the same
conversations straight to the target). A variant whose options `tapmirror
replay --help` does not name, or that ends in a usage error, is reported
as skipped, never run without them. Each variant's checked run asserts
every connection completed and every request (and for the unmodified
ones, every byte) reached the target.

Live workloads (need root or CAP_NET_RAW; skipped otherwise):

  L1  latency: 10,000 64-byte requests/s on 16 loopback connections,
      captured by `tapmirror capture -i lo` and replayed to a timing
      receiver (bench_latency sink); arrival - embedded send time, p50/p99/
      max, the kernel drop counter; and the same load sent straight to the
      receiver (the machine's floor). L1R: 1448-byte requests at each
      --gbps rate (default 1, 0.5, 0.25 Gbit/s): drops, delivery, p99,
      with tcpdump alone under the same load as the drop reference.
  L2  stuck target: the output capture's growth rate with a target that
      never reads (tmsink --mode noread) against no target at all.
  M1  idle flows: 100,000 handshakes without FIN fed through a pipe (live
      mode) into tapmirror replay -; RSS per idle flow.

Only the Python 3 standard library is used. Figures are medians of --runs
runs; MB = 10^6 bytes.
"""

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import count_fds, linfit, log, proc_status, raise_nofile, read_json, wait_file

SERVICE_PORT = 8080
MIB = 1024 * 1024

# name -> (description, tmgen options, quick tmgen options, targets)
WORKLOADS = {
    "W1": (
        "64 flows x 4 MiB, interleaved (concurrency 64)",
        ["--flows", "64", "--size", "4MiB", "--concurrency", "64"],
        ["--flows", "16", "--size", "4MiB", "--concurrency", "16"],
    ),
    "W3": (
        "2,000 flows x 64 KiB, 3% reordered, 2% retransmitted "
        "(concurrency 200)",
        ["--flows", "2000", "--size", "64KiB", "--reorder", "3",
         "--retransmit", "2", "--concurrency", "200"],
        ["--flows", "500", "--size", "64KiB", "--reorder", "3",
         "--retransmit", "2", "--concurrency", "200"],
    ),
    "W2": (
        "50,000 flows x 600 B request + 1,500 B response (concurrency 200)",
        ["--flows", "50000", "--size", "600", "--response", "1500",
         "--concurrency", "200"],
        ["--flows", "10000", "--size", "600", "--response", "1500",
         "--concurrency", "200"],
    ),
    "W4": (
        "W3 + 0.5% of client segments missing from the capture",
        ["--flows", "2000", "--size", "64KiB", "--reorder", "3",
         "--retransmit", "2", "--loss", "0.5", "--concurrency", "200"],
        ["--flows", "500", "--size", "64KiB", "--reorder", "3",
         "--retransmit", "2", "--loss", "0.5", "--concurrency", "200"],
    ),
}
REPLAY_ORDER = ["W1", "W3", "W2", "W4"]


def answering_sink(opts):
    """tmsink options that answer as the capture's server did: with tmgen
    --response, that many bytes once the request (--size) has arrived,
    before the client's close. Every run of the workload, turn mode,
    stream mode and the socket floor, uses the same target."""
    if "--response" not in opts:
        return ()
    return ("--respond", opts[opts.index("--response") + 1],
            "--respond-after", opts[opts.index("--size") + 1])

# Keep-alive HTTP/1.1 (bench_httpgen, bench_httptarget): name ->
# (description, generator options, quick generator options, variants,
# target ratio of the second variant's throughput to the first's). A
# variant is (name, extra `tapmirror replay` options); one whose options
# the binary does not have is skipped, never run without them.
HTTP_WORKLOADS = {
    "H1": (
        "200 connections x 100 keep-alive exchanges (GET, POST with JSON "
        "bodies, /health), JSON responses of 300-600 B",
        ["--connections", "200", "--exchanges", "100"],
        ["--connections", "100", "--exchanges", "50"],
        [("plain", []), ("compare", ["--compare"])],
        0.5,
    ),
    "H2": (
        "H1's capture with a request filter and header rewrites",
        ["--connections", "200", "--exchanges", "100"],
        ["--connections", "100", "--exchanges", "50"],
        [("plain", []),
         ("filtered", ["--match-path", "^/", "--skip-path", "^/health",
                       "--set-header", "X-Mirror: 1", "--mark"])],
        0.70,
    ),
}
HTTP_ORDER = ["H1", "H2"]
LIVE_ORDER = ["L1", "L2", "M1"]

# Targets from the issue.
TARGET_MBPS = 1000.0
TARGET_RATIO = 0.35
TARGET_FLOWS_PER_S = 20000.0
TARGET_RSS = 64 * MIB
TARGET_IDLE_FLOW_BYTES = 2048
TARGET_P99_US = 1000.0


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def wait_pid(proc, timeout):
    """Blocking wait4() on one child, killed after timeout seconds.
    Returns (status, rusage, end time). Blocking (not polling) so that the
    end time is exact; subprocess's own wait(timeout) sleeps in steps."""
    timer = threading.Timer(timeout, _kill_quietly, args=(proc.pid,))
    timer.daemon = True
    timer.start()
    try:
        while True:
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        timer.cancel()
    end = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru, end


def _kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(proc, timeout=10.0):
    """Ends a helper we started: SIGTERM, then SIGKILL."""
    if proc is None or proc.returncode is not None:
        return
    if proc.poll() is not None:
        return
    _kill_quietly(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_quietly(proc.pid)
        proc.wait()


def lo_drops():
    """The loopback interface's rx/tx drop counters (Linux), to tell
    interface-level drops (any traffic on lo) from the capture's own."""
    try:
        with open("/proc/net/dev") as fp:
            for line in fp:
                name, _, rest = line.partition(":")
                if name.strip() == "lo":
                    f = rest.split()
                    return int(f[3]) + int(f[11])
    except (OSError, ValueError, IndexError):
        pass
    return None


def fmt(x, spec, none="-"):
    return none if x is None else format(x, spec)


class Bench:
    def __init__(self, a):
        self.a = a
        self.scratch = a.scratch
        os.makedirs(self.scratch, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="run-", dir=self.scratch)
        shm = "/dev/shm"
        self.flowdir_base = shm if os.path.isdir(shm) and os.access(
            shm, os.W_OK) else self.tmp
        self.results = {}

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers ----

    def sink(self, tag, expect=None, hashed=False, mode=None, extra=()):
        port_file = os.path.join(self.tmp, tag + ".port")
        manifest = os.path.join(self.tmp, tag + ".sink.json")
        for p in (port_file, manifest):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [self.a.tmsink, "--port-file", port_file, "--manifest",
               manifest, "--quiet"]
        if expect:
            cmd += ["--expect", str(expect)]
        if not hashed:
            cmd += ["--no-hash"]
        if mode:
            cmd += ["--mode", mode]
        cmd += list(extra)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                preexec_fn=raise_nofile)
        port = int(wait_file(port_file, proc))
        return proc, port, manifest

    def wait_quiet(self, label):
        limit = self.a.wait_load
        if not limit:
            return
        deadline = time.monotonic() + self.a.wait_max
        while True:
            la = loadavg()
            if la is None or la[0] <= limit:
                return
            if time.monotonic() >= deadline:
                log("  load %.2f still above %.2f after waiting; going on"
                    % (la[0], limit))
                return
            log("  %s: load average %.2f > %.2f, waiting 60 s"
                % (label, la[0], limit))
            time.sleep(60)

    # ---- replay workloads ----

    def generate(self, name):
        desc, full, quick = WORKLOADS[name]
        opts = quick if self.a.quick else full
        tag = name + ("-quick" if self.a.quick else "")
        pcap = os.path.join(self.scratch, tag + ".pcap")
        manifest = os.path.join(self.scratch, tag + ".json")
        stamp = os.path.join(self.scratch, tag + ".stamp")
        st = os.stat(self.a.tmgen)
        want = json.dumps({"opts": opts, "tmgen": [st.st_size]})
        if (os.path.exists(pcap) and os.path.exists(manifest)
                and os.path.exists(stamp)):
            with open(stamp) as fp:
                if fp.read() == want:
                    return pcap, manifest, opts, True
        # Size estimate: payload both ways plus ~70 B of headers per packet.
        flows = int(opts[opts.index("--flows") + 1])
        size = parse_size(opts[opts.index("--size") + 1])
        resp = (parse_size(opts[opts.index("--response") + 1])
                if "--response" in opts else 0)
        est = int((flows * (size + resp)) * 1.15 + flows * 12 * 90)
        free = shutil.disk_usage(self.scratch).free
        if free < est + 512 * MIB:
            raise SkipWorkload("needs ~%d MB in %s, %d MB free"
                               % (est // 10**6, self.scratch, free // 10**6))
        for p in (pcap, manifest, stamp):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [self.a.tmgen, "-o", pcap, "-m", manifest,
               "--port", str(SERVICE_PORT)] + opts
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(stamp, "w") as fp:
            fp.write(want)
        return pcap, manifest, opts, False

    def tapmirror_run(self, pcap, expect, hashed, tag, extra=(),
                      sink_extra=()):
        sink, port, sink_manifest = self.sink(tag, expect=expect,
                                              hashed=hashed,
                                              extra=sink_extra)
        stats = os.path.join(self.tmp, tag + ".stats.json")
        if os.path.exists(stats):
            os.unlink(stats)
        cmd = [self.a.tapmirror, "replay", pcap, "-p", str(SERVICE_PORT),
               "--to", ":%d" % port, "--stats-json", stats, "-q", *extra]
        err = open(os.path.join(self.tmp, tag + ".stderr"), "w+")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=raise_nofile)
        rc, ru, _ = wait_pid(proc, self.a.timeout)
        src, sru, end = wait_pid(sink, 60)
        wall = end - t0
        err.seek(0)
        errtext = err.read()[-2000:]
        err.close()
        return {
            "wall_s": wall,
            "cpu_user_s": ru.ru_utime,
            "cpu_sys_s": ru.ru_stime,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "exit": rc,
            "sink_exit": src,
            "sink_cpu_s": sru.ru_utime + sru.ru_stime,
            "stats": read_json(stats),
            "sink": read_json(sink_manifest),
            "stderr": errtext,
        }

    def pcapread_run(self, pcap):
        t0 = time.perf_counter()
        proc = subprocess.Popen([self.a.pcapread, pcap],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        out = proc.stdout.read()
        rc, ru, end = wait_pid(proc, self.a.timeout)
        return {"wall_s": end - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                "exit": rc, "output": out.decode().strip()}

    def tcpflow_run(self, pcap):
        outdir = tempfile.mkdtemp(prefix="tapmirror-bench-tcpflow-",
                                  dir=self.flowdir_base)
        try:
            # -Fk bins the output into directories of 1,000 files (what
            # tcpflow itself recommends past 10,000 files).
            t0 = time.perf_counter()
            proc = subprocess.Popen([self.a.tcpflow, "-Fk", "-r", pcap, "-o",
                                     outdir], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            rc, ru, end = wait_pid(proc, self.a.timeout)
            return {"wall_s": end - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                    "exit": rc}
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

    def connloop_run(self, nflows, size, concurrency, sink_extra=()):
        """The socket floor: the same number of connections with the same
        client bytes from a minimal C client (bench_connloop) into tmsink
        --no-hash, at the workload's concurrency; wall until both have
        exited. No capture is read: what the kernel and the receiver cost."""
        sink, port, manifest = self.sink("connloop", expect=nflows,
                                         extra=sink_extra)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [self.a.connloop, "--port", str(port), "--count", str(nflows),
             "--size", str(size), "--concurrency", str(concurrency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=raise_nofile)
        rc, ru, _ = wait_pid(proc, self.a.timeout)
        src, sru, end = wait_pid(sink, 60)
        tot = (read_json(manifest) or {}).get("totals", {})
        return {"wall_s": end - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                "sink_cpu_s": sru.ru_utime + sru.ru_stime,
                "exit": rc, "ok": rc == 0 and src == 0
                and tot.get("complete") == nflows}

    def check(self, name, gen_manifest, run):
        """Exact comparison of a hashed run with tmgen's manifest."""
        problems = []
        flows = gen_manifest["flows"]
        totals = gen_manifest["totals"]
        sink = run["sink"] or {}
        stats = run["stats"] or {}
        conns = sink.get("connections", [])
        if run["exit"] != 0:
            problems.append("tapmirror exit %s: %s"
                            % (run["exit"], run["stderr"].strip()[-300:]))
        if run["sink_exit"] != 0:
            problems.append("tmsink exit %s" % run["sink_exit"])
        want = sorted((f["bytes"], f["fnv64"]) for f in flows)
        got = sorted((c["bytes"], c["fnv64"]) for c in conns)
        if want != got:
            missing = len(set(want) - set(got))
            problems.append("%d of %d flows differ (sink has %d connections)"
                            % (missing, len(want), len(conns)))
        incomplete = sum(1 for c in conns if not c.get("complete"))
        if incomplete:
            problems.append("%d connections not complete" % incomplete)
        fl = stats.get("flows", {})
        tg = (stats.get("targets") or [{}])[0]
        expect = {
            ("flows", "seen"): totals["flows"],
            ("flows", "completed"): totals["flows"],
            ("flows", "payload_bytes"): totals["bytes"],
            ("flows", "gaps"): totals["gaps"],
            ("flows", "gap_bytes"): totals["gap_bytes"],
            ("flows", "unfinished"): 0,
            ("targets", "bytes_delivered"): totals["bytes"],
            ("targets", "flows_dropped"): 0,
            ("targets", "connections"): totals["flows"],
        }
        for (sect, key), v in expect.items():
            have = (fl if sect == "flows" else tg).get(key)
            if have != v:
                problems.append("stats %s.%s = %s, expected %s"
                                % (sect, key, have, v))
        return {"ok": not problems, "problems": problems,
                "flows": totals["flows"], "bytes": totals["bytes"],
                "gaps": fl.get("gaps"), "gap_bytes": fl.get("gap_bytes"),
                "expected_gaps": totals["gaps"],
                "expected_gap_bytes": totals["gap_bytes"],
                "wall_s": run["wall_s"]}

    def replay_workload(self, name):
        desc = WORKLOADS[name][0]
        pcap, man_path, opts, reused = self.generate(name)
        log("%s: %s" % (name, "quick: tmgen " + " ".join(opts)
                        if self.a.quick else desc))
        with open(man_path) as fp:
            man = json.load(fp)
        totals = man["totals"]
        nflows, nbytes = totals["flows"], totals["bytes"]
        file_bytes = os.path.getsize(pcap)
        log("  capture %s (%s): %d packets, %.1f MB file, %d flows, "
            "%.1f MB client payload"
            % (pcap, "reused" if reused else "generated", totals["packets"],
               file_bytes / 1e6, nflows, nbytes / 1e6))
        answer = answering_sink(opts)
        if answer:
            log("  target: tmsink %s (as the capture's server answered)"
                % " ".join(answer))
        # Warm the page cache, then the correctness run.
        self.pcapread_run(pcap)
        checked = self.check(name, man, self.tapmirror_run(
            pcap, nflows, True, name + "-checked", sink_extra=answer))
        log("  checked run: %s%s" % ("OK" if checked["ok"] else "FAILED",
                                     "" if checked["ok"] else ": " +
                                     "; ".join(checked["problems"])))
        self.wait_quiet(name)
        use_tcpflow = self.a.tcpflow is not None and not (
            name == "W2" and self.a.no_tcpflow_w2)
        la0 = loadavg()
        tm_runs, bare_runs, tf_runs, cl_runs = [], [], [], []
        # Stream mode (--turns off) in the same run, interleaved: turn
        # mode must cost little where the capture has no turns to wait
        # for (tmgen's clients send before hearing the server).
        stream_runs = []
        use_connloop = (self.a.connloop
                        and os.access(self.a.connloop, os.X_OK))
        conc = int(opts[opts.index("--concurrency") + 1])
        csize = parse_size(opts[opts.index("--size") + 1])
        for i in range(self.a.runs):
            bare_runs.append(self.pcapread_run(pcap))
            if use_tcpflow:
                tf_runs.append(self.tcpflow_run(pcap))
            if use_connloop:
                cl_runs.append(self.connloop_run(nflows, csize, conc,
                                                 sink_extra=answer))
            sr = self.tapmirror_run(pcap, nflows, False,
                                    "%s-stream-%d" % (name, i),
                                    extra=("--turns", "off"),
                                    sink_extra=answer)
            stream_runs.append({"wall_s": sr["wall_s"], "cpu_s": sr["cpu_s"],
                                "exit": sr["exit"]})
            r = self.tapmirror_run(pcap, nflows, False, "%s-%d" % (name, i),
                                   sink_extra=answer)
            sink = r["sink"] or {}
            st = r["stats"] or {}
            tg = (st.get("targets") or [{}])[0]
            r["ok"] = (r["exit"] == 0 and r["sink_exit"] == 0
                       and sink.get("totals", {}).get("bytes") == nbytes
                       and sink.get("totals", {}).get("complete") == nflows
                       and tg.get("flows_dropped") == 0)
            r["peak_rss_bytes"] = st.get("process", {}).get("peak_rss_bytes")
            del r["sink"], r["stats"]
            if r["ok"]:
                r.pop("stderr")
            tm_runs.append(r)
            log("  run %d: tapmirror %.3f s (cpu %.3f s, tmsink cpu %.3f s, "
                "rss %.1f MiB)%s, bare loop %.3f s%s"
                % (i + 1, r["wall_s"], r["cpu_s"], r["sink_cpu_s"],
                   (r["peak_rss_bytes"] or 0) / MIB,
                   "" if r["ok"] else " NOT OK", bare_runs[-1]["wall_s"],
                   ", tcpflow %.3f s" % tf_runs[-1]["wall_s"]
                   if tf_runs else "") + (
                       ", socket floor %.3f s" % cl_runs[-1]["wall_s"]
                       if cl_runs else ""))
        la1 = loadavg()
        tm_wall = median(r["wall_s"] for r in tm_runs)
        bare_wall = median(r["wall_s"] for r in bare_runs)
        tf_wall = median(r["wall_s"] for r in tf_runs) if tf_runs else None
        res = {
            "description": desc,
            "tmgen_options": opts,
            "target": "tmsink " + " ".join(answer) if answer else "tmsink",
            "capture": {"file_bytes": file_bytes,
                        "packets": totals["packets"], "flows": nflows,
                        "client_bytes": nbytes, "gaps": totals["gaps"],
                        "gap_bytes": totals["gap_bytes"]},
            "loadavg_before": la0,
            "loadavg_after": la1,
            "check": checked,
            "tapmirror": {
                "runs": tm_runs,
                "wall_s": tm_wall,
                "mbps": nbytes / tm_wall / 1e6,
                "flows_per_s": nflows / tm_wall,
                "cpu_s": median(r["cpu_s"] for r in tm_runs),
                "cpu_user_s": median(r["cpu_user_s"] for r in tm_runs),
                "cpu_sys_s": median(r["cpu_sys_s"] for r in tm_runs),
                "sink_cpu_s": median(r["sink_cpu_s"] for r in tm_runs),
                "peak_rss_bytes": median(r["peak_rss_bytes"]
                                         for r in tm_runs),
                "max_peak_rss_bytes": max((r["peak_rss_bytes"] or 0)
                                          for r in tm_runs),
                "all_runs_ok": all(r["ok"] for r in tm_runs),
            },
            "bare_loop": {
                "runs": bare_runs,
                "wall_s": bare_wall,
                "cpu_s": median(r["cpu_s"] for r in bare_runs),
                "mbps": nbytes / bare_wall / 1e6,
                "file_mbps": file_bytes / bare_wall / 1e6,
            },
            "tcpflow": ({"runs": tf_runs, "wall_s": tf_wall,
                         "cpu_s": median(r["cpu_s"] for r in tf_runs),
                         "command": "tcpflow -Fk -r FILE -o DIR (tmpfs)"}
                        if tf_runs else None),
            "socket_floor": ({
                "description": "bench_connloop: the same number of "
                               "connections of the same size (%s x %d B, "
                               "concurrency %d) from a minimal C client into "
                               "tmsink --no-hash%s, no capture read: the "
                               "kernel's and the receiver's cost"
                               % (nflows, csize, conc,
                                  "".join(" " + a for a in answer)),
                "runs": cl_runs,
                "wall_s": median(r["wall_s"] for r in cl_runs),
                "mbps": nflows * csize / median(r["wall_s"]
                                                for r in cl_runs) / 1e6,
                "flows_per_s": nflows / median(r["wall_s"] for r in cl_runs),
                "cpu_s": median(r["cpu_s"] for r in cl_runs),
                "sink_cpu_s": median(r["sink_cpu_s"] for r in cl_runs),
                "all_ok": all(r["ok"] for r in cl_runs),
            } if cl_runs else None),
            "ratio_vs_socket_floor": (median(r["wall_s"] for r in cl_runs)
                                      / tm_wall) if cl_runs else None,
            "ratio_vs_bare_loop": bare_wall / tm_wall,
            "stream_mode": {
                "runs": stream_runs,
                "wall_s": median(r["wall_s"] for r in stream_runs),
                "cpu_s": median(r["cpu_s"] for r in stream_runs),
                "command": "the same replay with --turns off",
            },
            "turns_vs_stream": tm_wall / median(r["wall_s"]
                                                for r in stream_runs),
            "speedup_vs_tcpflow": (tf_wall / tm_wall) if tf_wall else None,
        }
        if cl_runs:
            res["machine_bound"] = machine_bound(res, nbytes, nflows)
        tmr = res["tapmirror"]
        res["targets"] = {
            "mbps_ge_1000": tmr["mbps"] >= TARGET_MBPS
            if name in ("W1", "W3") else None,
            "ratio_ge_0.35": res["ratio_vs_bare_loop"] >= TARGET_RATIO
            if name in ("W1", "W3") else None,
            "flows_per_s_ge_20000": tmr["flows_per_s"] >= TARGET_FLOWS_PER_S
            if name == "W2" else None,
            "peak_rss_lt_64MiB": tmr["max_peak_rss_bytes"] < TARGET_RSS,
            "turns_within_10pct_of_stream":
                res["turns_vs_stream"] <= 1.10,
            "delivered_ok": checked["ok"] and tmr["all_runs_ok"],
        }
        self.results[name] = res

    # ---- keep-alive HTTP workloads (H1, H2) ----

    def replay_help(self):
        """`tapmirror replay --help`, once."""
        if not hasattr(self, "_replay_help"):
            p = subprocess.run([self.a.tapmirror, "replay", "--help"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            self._replay_help = p.stdout.decode(errors="replace")
        return self._replay_help

    def missing_options(self, extra):
        """The options in `extra` that `tapmirror replay --help` does not
        name: a variant that needs them cannot run on this binary."""
        text = self.replay_help()
        return [o for o in extra if o.startswith("--")
                and not re.search(re.escape(o) + r"(?![\w-])", text)]

    def max_buffer_bytes(self):
        if self.a.max_buffer:
            return parse_size(self.a.max_buffer)
        m = re.search(r"--max-buffer SIZE.*?\(default: (\w+)\)",
                      self.replay_help(), re.S)
        return parse_size(m.group(1)) if m else None

    def generate_http(self, name):
        desc, full, quick = HTTP_WORKLOADS[name][:3]
        opts = quick if self.a.quick else full
        # H1 and H2 share their capture when their options agree.
        tag = "H-" + "-".join(opts[1::2])
        pcap = os.path.join(self.scratch, tag + ".pcap")
        manifest = os.path.join(self.scratch, tag + ".json")
        stamp = os.path.join(self.scratch, tag + ".stamp")
        st = os.stat(self.a.httpgen)
        want = json.dumps({"opts": opts, "httpgen": [st.st_size,
                                                     st.st_mtime]})
        if (os.path.exists(pcap) and os.path.exists(manifest)
                and os.path.exists(stamp)):
            with open(stamp) as fp:
                if fp.read() == want:
                    return pcap, read_json(manifest), opts, True
        for p in (pcap, manifest, stamp):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run([self.a.httpgen, "-o", pcap, "-m", manifest,
                        "--port", str(SERVICE_PORT)] + opts, check=True,
                       stdout=subprocess.DEVNULL)
        with open(stamp, "w") as fp:
            fp.write(want)
        return pcap, read_json(manifest), opts, False

    def http_target(self, tag, expect):
        port_file = os.path.join(self.tmp, tag + ".port")
        out = os.path.join(self.tmp, tag + ".target.json")
        for p in (port_file, out):
            if os.path.exists(p):
                os.unlink(p)
        fp = open(out, "w")
        proc = subprocess.Popen([self.a.httptarget, "--port-file", port_file,
                                 "--expect", str(expect)], stdout=fp,
                                preexec_fn=raise_nofile)
        fp.close()
        try:
            port = int(wait_file(port_file, proc))
        except RuntimeError:
            stop(proc)
            raise
        return proc, port, out

    def http_replay_run(self, pcap, man, extra, tag):
        """One replay into bench_httptarget: wall from the spawn until
        both have exited (the target exits once every connection has
        ended), tapmirror's CPU, the stats JSON and the target's counts."""
        target, port, target_out = self.http_target(tag, man["connections"])
        stats = os.path.join(self.tmp, tag + ".stats.json")
        if os.path.exists(stats):
            os.unlink(stats)
        cmd = [self.a.tapmirror, "replay", pcap, "-p", str(SERVICE_PORT),
               "--to", ":%d" % port, "--stats-json", stats, "-q"]
        if self.a.max_buffer:
            cmd += ["--max-buffer", self.a.max_buffer]
        cmd += list(extra)
        err = open(os.path.join(self.tmp, tag + ".stderr"), "w+")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=raise_nofile)
        rc, ru, _ = wait_pid(proc, self.a.timeout)
        # A replay that failed leaves the target waiting: do not wait long.
        trc, tru, end = wait_pid(target, 60 if rc in (0, 3) else 5)
        err.seek(0)
        errtext = err.read()[-2000:]
        err.close()
        st = read_json(stats) or {}
        return {
            "wall_s": end - t0,
            "cpu_user_s": ru.ru_utime,
            "cpu_sys_s": ru.ru_stime,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "exit": rc,
            "target_exit": trc,
            "target_cpu_s": tru.ru_utime + tru.ru_stime,
            "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
            "stats": st,
            "target": read_json(target_out),
            "stderr": errtext,
        }

    def http_floor_run(self, man):
        """The floor: bench_httpfloor speaks the capture's conversations
        straight to the target (no capture read), at the capture's
        concurrency; wall until both have exited."""
        target, port, target_out = self.http_target("hfloor",
                                                    man["connections"])
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [self.a.httpfloor, "--port", str(port), "--connections",
             str(man["connections"]), "--exchanges",
             str(man["exchanges_per_connection"]), "--concurrency",
             str(man["concurrency"]), "--seed", str(man["seed"])],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=raise_nofile)
        out = proc.stdout.read().decode()
        rc, ru, _ = wait_pid(proc, self.a.timeout)
        trc, tru, end = wait_pid(target, 60 if rc == 0 else 5)
        t = read_json(target_out) or {}
        return {"wall_s": end - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                "target_cpu_s": tru.ru_utime + tru.ru_stime, "exit": rc,
                "output": out.strip(),
                "ok": rc == 0 and trc == 0
                and t.get("requests") == man["requests"]}

    def http_check(self, variant, man, run):
        """What the target and the stats JSON must show for a variant:
        every connection completed, every request received (but /health
        when it is filtered out), and for the unmodified variants the very
        bytes the capture's clients sent."""
        problems = []
        t = run["target"] or {}
        st = run["stats"] or {}
        fl = st.get("flows", {})
        tg = (st.get("targets") or [{}])[0]
        if run["exit"] != 0:
            problems.append("tapmirror exit %s: %s"
                            % (run["exit"], run["stderr"].strip()[-300:]))
        if run["target_exit"] != 0:
            problems.append("target exit %s" % run["target_exit"])
        filtered = variant == "filtered"
        want_requests = man["requests"] - (man["health_requests"]
                                           if filtered else 0)
        expect = [
            ("target", "connections", t.get("connections"),
             man["connections"]),
            ("target", "requests", t.get("requests"), want_requests),
            ("target", "bad_requests", t.get("bad_requests"), 0),
            ("stats", "flows.seen", fl.get("seen"), man["connections"]),
            ("stats", "flows.completed", fl.get("completed"),
             man["connections"]),
            ("stats", "flows.unfinished", fl.get("unfinished"), 0),
            ("stats", "flows.gaps", fl.get("gaps"), 0),
            ("stats", "targets.completed", tg.get("completed"),
             man["connections"]),
            ("stats", "targets.flows_dropped", tg.get("flows_dropped"), 0),
            ("stats", "targets.closed_before_finished",
             tg.get("closed_before_finished"), 0),
        ]
        if filtered:
            expect.append(("target", "health_requests",
                           t.get("health_requests"), 0))
        else:
            expect += [
                ("target", "request_bytes", t.get("request_bytes"),
                 man["client_bytes"]),
                ("target", "request_fnv_sum", t.get("request_fnv_sum"),
                 man["client_fnv_sum"]),
                ("stats", "targets.bytes_delivered",
                 tg.get("bytes_delivered"), man["client_bytes"]),
            ]
        for src, key, have, want in expect:
            if have != want:
                problems.append("%s %s = %s, expected %s"
                                % (src, key, have, want))
        return {"ok": not problems, "problems": problems,
                "turns": tg.get("turns"),
                "turns_quiet": tg.get("turns_quiet"),
                "turns_timed_out": tg.get("turns_timed_out"),
                "target": t,
                "compare": st.get("compare")}

    def http_workload(self, name):
        desc, _, _, variants, want_ratio = HTTP_WORKLOADS[name]
        for k in ("httpgen", "httptarget"):
            if not os.access(getattr(self.a, k), os.X_OK):
                raise SkipWorkload("no bench_%s at %s"
                                   % (k, getattr(self.a, k)))
        pcap, man, opts, reused = self.generate_http(name)
        log("%s: %s" % (name, "quick: bench_httpgen " + " ".join(opts)
                        if self.a.quick else desc))
        file_bytes = os.path.getsize(pcap)
        log("  capture %s (%s): %d packets, %.1f MB file, %d connections, "
            "%d requests (%d /health), %.1f MB client + %.1f MB server "
            "payload" % (pcap, "reused" if reused else "generated",
                         man["packets"], file_bytes / 1e6,
                         man["connections"], man["requests"],
                         man["health_requests"], man["client_bytes"] / 1e6,
                         man["server_bytes"] / 1e6))
        self.pcapread_run(pcap)  # warm the page cache
        res = {"description": desc, "generator_options": opts,
               "capture": dict(man, file_bytes=file_bytes),
               "max_buffer_bytes": self.max_buffer_bytes(),
               "variants": {}, "target_ratio": want_ratio}
        runnable = []
        for vname, extra in variants:
            v = {"extra_args": extra}
            res["variants"][vname] = v
            missing = self.missing_options(extra)
            if missing:
                v["skipped"] = "the binary has no " + ", ".join(missing)
                log("  %s: skipped: %s" % (vname, v["skipped"]))
                continue
            checked = self.http_replay_run(pcap, man, extra,
                                           "%s-%s-checked" % (name, vname))
            if checked["exit"] == 2:
                v["skipped"] = ("usage error with %s: %s"
                                % (" ".join(extra), " / ".join(
                                    checked["stderr"].strip()[-300:]
                                    .splitlines())))
                log("  %s: skipped: %s" % (vname, v["skipped"]))
                continue
            v["check"] = self.http_check(vname, man, checked)
            log("  %s checked run: %s%s (turns %s, quiet %s, timed out %s)"
                % (vname, "OK" if v["check"]["ok"] else "FAILED",
                   "" if v["check"]["ok"] else ": " +
                   "; ".join(v["check"]["problems"]),
                   v["check"]["turns"], v["check"]["turns_quiet"],
                   v["check"]["turns_timed_out"]))
            runnable.append((vname, extra))
        self.wait_quiet(name)
        use_floor = os.access(self.a.httpfloor, os.X_OK)
        floor_runs = []
        runs = {vname: [] for vname, _ in runnable}
        la0 = loadavg()
        for i in range(self.a.runs):
            if use_floor:
                floor_runs.append(self.http_floor_run(man))
            # Alternate the order so that neither variant always runs
            # right after the floor.
            order = runnable if i % 2 == 0 else runnable[::-1]
            line = []
            for vname, extra in order:
                r = self.http_replay_run(pcap, man, extra,
                                         "%s-%s-%d" % (name, vname, i))
                t = r.pop("target") or {}
                st = r.pop("stats")
                tg = (st.get("targets") or [{}])[0]
                want_req = man["requests"] - (man["health_requests"]
                                              if vname == "filtered" else 0)
                r["ok"] = (r["exit"] == 0 and r["target_exit"] == 0
                           and t.get("requests") == want_req
                           and tg.get("completed") == man["connections"])
                r["turns_quiet"] = tg.get("turns_quiet")
                r["turns_timed_out"] = tg.get("turns_timed_out")
                if r["ok"]:
                    r.pop("stderr")
                runs[vname].append(r)
                line.append("%s %.3f s (cpu %.3f, rss %.1f MiB)%s"
                            % (vname, r["wall_s"], r["cpu_s"],
                               (r["peak_rss_bytes"] or 0) / MIB,
                               "" if r["ok"] else " NOT OK"))
            log("  run %d: %s%s" % (i + 1, ", ".join(line),
                                     ", floor %.3f s" % floor_runs[-1]
                                     ["wall_s"] if floor_runs else ""))
        res["loadavg_before"], res["loadavg_after"] = la0, loadavg()
        if floor_runs:
            fw = median(r["wall_s"] for r in floor_runs)
            res["floor"] = {
                "description": "bench_httpfloor: the capture's requests "
                               "sent straight to bench_httptarget, each "
                               "after the previous answer, same "
                               "concurrency, no capture read",
                "runs": floor_runs, "wall_s": fw,
                "requests_per_s": man["requests"] / fw,
                "cpu_s": median(r["cpu_s"] for r in floor_runs),
                "target_cpu_s": median(r["target_cpu_s"]
                                       for r in floor_runs),
                "all_ok": all(r["ok"] for r in floor_runs)}
        for vname, vruns in runs.items():
            v = res["variants"][vname]
            w = median(r["wall_s"] for r in vruns)
            v.update({
                "runs": vruns, "wall_s": w,
                "requests_per_s": man["requests"] / w,
                "client_mbps": man["client_bytes"] / w / 1e6,
                "cpu_s": median(r["cpu_s"] for r in vruns),
                "cpu_user_s": median(r["cpu_user_s"] for r in vruns),
                "cpu_sys_s": median(r["cpu_sys_s"] for r in vruns),
                "target_cpu_s": median(r["target_cpu_s"] for r in vruns),
                "peak_rss_bytes": median(r["peak_rss_bytes"] for r in vruns),
                "max_peak_rss_bytes": max((r["peak_rss_bytes"] or 0)
                                          for r in vruns),
                "all_runs_ok": all(r["ok"] for r in vruns),
                "ratio_vs_floor": (res["floor"]["wall_s"] / w
                                   if floor_runs else None),
            })
        base, other = variants[0][0], variants[1][0]
        vb, vo = res["variants"][base], res["variants"][other]
        ratio = (vb["wall_s"] / vo["wall_s"]
                 if "wall_s" in vb and "wall_s" in vo else None)
        res["ratio"] = ratio
        mb = res["max_buffer_bytes"]
        res["targets"] = {
            "ratio_ge_%.2f" % want_ratio: (ratio >= want_ratio
                                           if ratio is not None else None),
            "rss_within_max_buffer": (
                all(v["max_peak_rss_bytes"] <= mb
                    for v in res["variants"].values() if "runs" in v)
                if mb else None),
            "delivered_ok": all(v["check"]["ok"] and v["all_runs_ok"]
                                for v in res["variants"].values()
                                if "runs" in v),
        }
        self.results[name] = res

    # ---- live workloads ----

    def live_capture(self, port, to_port, tag, extra=()):
        stats = os.path.join(self.tmp, tag + ".stats.json")
        out = os.path.join(self.tmp, tag + ".pcap")
        for p in (stats, out):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [self.a.tapmirror, "capture", "-i", "lo", "-p", str(port),
               "-o", out, "--stats-json", stats, "-q"]
        if to_port:
            cmd += ["--to", ":%d" % to_port]
        cmd += list(extra) + shlex.split(self.a.capture_args)
        err = open(os.path.join(self.tmp, tag + ".stderr"), "w+")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=raise_nofile)
        proc.err = err
        # Wait for the capture to be live: the output gets its file header
        # once the handle is active.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err.seek(0)
                raise SkipWorkload("tapmirror capture -i lo failed: "
                                   + err.read().strip()[-300:])
            if os.path.exists(out) and os.path.getsize(out) >= 24:
                break
            time.sleep(0.01)
        time.sleep(0.3)
        return proc, stats, out

    def end_capture(self, proc, stats):
        # SIGTERM, not SIGINT: a shell without job control starts
        # background commands with SIGINT ignored.
        proc.send_signal(signal.SIGTERM)
        rc, ru, _ = wait_pid(proc, 60)
        proc.err.close()
        st = read_json(stats) or {}
        return rc, ru, st

    def latency_server(self, tag):
        pf = os.path.join(self.tmp, tag + ".svc.port")
        if os.path.exists(pf):
            os.unlink(pf)
        p = subprocess.Popen([self.a.latency, "serve", "--port", "0",
                              "--port-file", pf], stdout=subprocess.DEVNULL)
        return p, int(wait_file(pf, p))

    def latency_sink(self, tag, size):
        pf = os.path.join(self.tmp, tag + ".lat.port")
        out = os.path.join(self.tmp, tag + ".lat.json")
        for p in (pf, out):
            if os.path.exists(p):
                os.unlink(p)
        p = subprocess.Popen([self.a.latency, "sink", "--port-file", pf,
                              "--out", out, "--size", str(size)],
                             stdout=subprocess.DEVNULL)
        return p, int(wait_file(pf, p)), out

    def latency_once(self, tag, rate, seconds, conns, size):
        svc, sport = self.latency_server(tag)
        lsink, lport, lout = self.latency_sink(tag, size)
        procs = [svc, lsink]
        try:
            cap, stats, _ = self.live_capture(sport, lport, tag)
            procs.append(cap)
            d0 = lo_drops()
            gen = subprocess.run(
                [self.a.latency, "gen", "--port", str(sport), "--rate",
                 str(rate), "--seconds", str(seconds), "--conns", str(conns),
                 "--size", str(size)], stdout=subprocess.PIPE, check=True)
            sent = json.loads(gen.stdout)
            time.sleep(0.5)
            d1 = lo_drops()
            rc, ru, st = self.end_capture(cap, stats)
            stop(lsink)
            lat = read_json(lout) or {}
            tg = (st.get("targets") or [{}])[0]
            return {
                "sent": sent,
                "latency": lat,
                "kernel_drops": st.get("source", {}).get("kernel_drops"),
                "delivery_switches":
                    st.get("source", {}).get("delivery_switches"),
                "handover_duplicates_skipped":
                    st.get("source", {}).get("handover_duplicates_skipped"),
                "lo_interface_drops": (d1 - d0) if d0 is not None else None,
                "packets": st.get("source", {}).get("packets"),
                "bytes_delivered": tg.get("bytes_delivered"),
                "bytes_sent": sent.get("bytes"),
                "complete": (lat.get("requests") == sent.get("sent")
                             and lat.get("bad") == 0),
                "exit": rc,
                "cpu_s": ru.ru_utime + ru.ru_stime,
                "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
            }
        finally:
            for p in procs:
                stop(p)

    def latency_direct(self, tag, rate, seconds, conns, size):
        """The floor: the same load straight into the timing receiver, no
        capture and no replay (what this machine's scheduler allows)."""
        lsink, lport, lout = self.latency_sink(tag, size)
        try:
            gen = subprocess.run(
                [self.a.latency, "gen", "--port", str(lport), "--rate",
                 str(rate), "--seconds", str(seconds), "--conns", str(conns),
                 "--size", str(size)], stdout=subprocess.PIPE, check=True)
            time.sleep(0.3)
            stop(lsink)
            return {"sent": json.loads(gen.stdout),
                    "latency": read_json(lout) or {}}
        finally:
            stop(lsink)

    def tcpdump_once(self, tag, rate, seconds, conns, size):
        """Reference capture: tcpdump in immediate mode with tapmirror's
        kernel buffer and snap length, same load; its drop counters."""
        svc, sport = self.latency_server(tag)
        out = os.path.join(self.tmp, tag + ".pcap")
        err = open(os.path.join(self.tmp, tag + ".stderr"), "w+")
        td = None
        try:
            td = subprocess.Popen(
                [self.a.tcpdump, "-i", "lo", "--immediate-mode", "-B",
                 "131072", "-s", "262144", "-w", out, "tcp", "port",
                 str(sport)], stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and td.poll() is None:
                if os.path.exists(out) and os.path.getsize(out) >= 24:
                    break
                time.sleep(0.01)
            time.sleep(0.3)
            gen = subprocess.run(
                [self.a.latency, "gen", "--port", str(sport), "--rate",
                 str(rate), "--seconds", str(seconds), "--conns", str(conns),
                 "--size", str(size)], stdout=subprocess.PIPE, check=True)
            time.sleep(0.5)
            td.send_signal(signal.SIGINT)
            wait_pid(td, 30)
            err.seek(0)
            text = err.read()
            drops = 0
            found = False
            for line in text.splitlines():
                f = line.split()
                if len(f) >= 4 and f[1:3] == ["packets", "dropped"]:
                    drops += int(f[0])
                    found = True
            return {"sent": json.loads(gen.stdout),
                    "kernel_drops": drops if found else None}
        finally:
            stop(td)
            stop(svc)
            err.close()

    def l1_rate(self, gbps, seconds):
        rate = int(gbps * 1e9 / 8 / 1448)
        log("L1R: %d x %g s of %.2f Gbit/s (%d 1448-byte requests/s on 8 "
            "connections)" % (self.a.runs, seconds, gbps, rate))
        rate_runs, td_runs = [], []
        for i in range(self.a.runs):
            tag = "%g-%d" % (gbps, i)
            if self.a.tcpdump:
                td_runs.append(self.tcpdump_once("L1T-" + tag, rate,
                                                 seconds, 8, 1448))
            d = self.latency_direct("L1RD-" + tag, rate, seconds, 8, 1448)
            r = self.latency_once("L1R-" + tag, rate, seconds, 8, 1448)
            r["direct"] = d
            log("  run %d: achieved %.0f req/s (%.2f Gbit/s), kernel drops "
                "%s (lo drops %s), delivery switches %s, delivered %s/%s "
                "bytes, p99 %s us, tapmirror cpu %.2f s; direct p99 %s us%s"
                % (i + 1, r["sent"]["rate"],
                   r["sent"]["rate"] * 1448 * 8 / 1e9, r["kernel_drops"],
                   r["lo_interface_drops"], r["delivery_switches"],
                   r["bytes_delivered"],
                   r["bytes_sent"], r["latency"].get("p99_us"), r["cpu_s"],
                   d["latency"].get("p99_us"),
                   "; tcpdump alone: %.2f Gbit/s, drops %s" % (
                       td_runs[-1]["sent"]["rate"] * 1448 * 8 / 1e9,
                       td_runs[-1]["kernel_drops"]) if td_runs else ""))
            rate_runs.append(r)
        return {
            "target_gbps": gbps,
            "runs": rate_runs,
            "achieved_gbps": median(r["sent"]["rate"] * 1448 * 8 / 1e9
                                    for r in rate_runs),
            "kernel_drops": median(r["kernel_drops"] for r in rate_runs),
            "kernel_drops_total": sum((r["kernel_drops"] or 0)
                                      for r in rate_runs),
            "p50_us": median(r["latency"].get("p50_us") for r in rate_runs),
            "p99_us": median(r["latency"].get("p99_us") for r in rate_runs),
            "direct_p50_us": median(r["direct"]["latency"].get("p50_us")
                                    for r in rate_runs),
            "direct_p99_us": median(r["direct"]["latency"].get("p99_us")
                                    for r in rate_runs),
            "all_bytes_delivered": all(
                r["bytes_delivered"] == r["bytes_sent"] for r in rate_runs),
            "cpu_s": median(r["cpu_s"] for r in rate_runs),
            "peak_rss_bytes": median(r["peak_rss_bytes"] for r in rate_runs),
            "tcpdump": ({
                "command": "tcpdump -i lo --immediate-mode -B 131072 "
                           "-s 262144 -w FILE tcp port P",
                "runs": td_runs,
                "achieved_gbps": median(r["sent"]["rate"] * 1448 * 8 / 1e9
                                        for r in td_runs),
                "kernel_drops": median(r["kernel_drops"] for r in td_runs),
                "kernel_drops_total": sum((r["kernel_drops"] or 0)
                                          for r in td_runs),
            } if td_runs else None),
        }

    def live_l1(self):
        q = self.a.quick
        seconds = 2 if q else 5
        runs = []
        log("L1: %d x %g s of 10,000 64-byte requests/s through "
            "tapmirror capture -i lo" % (self.a.runs, seconds))
        self.wait_quiet("L1")
        la0 = loadavg()
        floor = []
        for i in range(self.a.runs):
            d = self.latency_direct("L1D-%d" % i, 10000, seconds, 16, 64)
            floor.append(d)
            r = self.latency_once("L1-%d" % i, 10000, seconds, 16, 64)
            lat = r["latency"]
            log("  run %d: p50 %s us, p99 %s us, max %s us, %s/%s requests, "
                "kernel drops %s (lo drops %s), delivery switches %s; "
                "direct (no capture): p50 %s us, p99 %s us"
                % (i + 1, lat.get("p50_us"), lat.get("p99_us"),
                   lat.get("max_us"), lat.get("requests"),
                   r["sent"].get("sent"), r["kernel_drops"],
                   r["lo_interface_drops"], r["delivery_switches"],
                   d["latency"].get("p50_us"), d["latency"].get("p99_us")))
            runs.append(r)
        # MSS-sized requests at each --gbps rate: drops, delivery, p99.
        sweep = []
        for gbps in self.a.gbps:
            sweep.append(self.l1_rate(gbps, seconds))
        la1 = loadavg()

        def lat_med(rs, k):
            return median(r["latency"].get(k) for r in rs)

        self.results["L1"] = {
            "description": "10,000 64-byte requests/s on 16 loopback "
                           "connections, tapmirror capture -i lo --to the "
                           "timing receiver; latency = arrival - send time",
            "loadavg_before": la0, "loadavg_after": la1,
            "runs": runs,
            "p50_us": lat_med(runs, "p50_us"),
            "p90_us": lat_med(runs, "p90_us"),
            "p99_us": lat_med(runs, "p99_us"),
            "p999_us": lat_med(runs, "p999_us"),
            "max_us": lat_med(runs, "max_us"),
            "max_of_max_us": max((r["latency"].get("max_us") or 0)
                                 for r in runs),
            "direct": {
                "description": "the same load straight into the receiver "
                               "(no capture, no replay): the machine's floor",
                "runs": floor,
                "p50_us": lat_med(floor, "p50_us"),
                "p99_us": lat_med(floor, "p99_us"),
                "max_us": lat_med(floor, "max_us"),
            },
            "kernel_drops": median(r["kernel_drops"] for r in runs),
            "kernel_drops_total": sum((r["kernel_drops"] or 0)
                                      for r in runs),
            "all_requests_delivered": all(r["complete"] for r in runs),
            "peak_rss_bytes": median(r["peak_rss_bytes"] for r in runs),
            "rate_sweep": sweep,
            "gbit": next((x for x in sweep if x["target_gbps"] == 1.0),
                         sweep[0] if sweep else None),
        }
        res = self.results["L1"]
        res["targets"] = {
            "p99_lt_1ms": res["p99_us"] is not None
            and res["p99_us"] < TARGET_P99_US,
            "no_kernel_drops_1gbit": res["gbit"]["kernel_drops_total"] == 0
            if res["gbit"] and res["gbit"]["target_gbps"] == 1.0 else None,
        }

    def l2_once(self, tag, with_target, rate, seconds, conns):
        svc, sport = self.latency_server(tag)
        procs = [svc]
        sink = None
        try:
            if with_target:
                sink, tport, _ = self.sink(tag, mode="noread")
                procs.append(sink)
            cap, stats, out = self.live_capture(
                sport, tport if with_target else None, tag)
            procs.append(cap)
            samples = []
            stop_ev = threading.Event()

            def sampler():
                t0 = time.monotonic()
                while not stop_ev.is_set():
                    try:
                        samples.append((time.monotonic() - t0,
                                        os.path.getsize(out)))
                    except OSError:
                        pass
                    time.sleep(0.1)

            th = threading.Thread(target=sampler, daemon=True)
            th.start()
            gen = subprocess.run(
                [self.a.latency, "gen", "--port", str(sport), "--rate",
                 str(rate), "--seconds", str(seconds), "--conns", str(conns),
                 "--size", "1448", "--warmup-ms", "200"],
                stdout=subprocess.PIPE, check=True)
            sent = json.loads(gen.stdout)
            time.sleep(0.3)
            stop_ev.set()
            th.join()
            rc, ru, st = self.end_capture(cap, stats)
            # Growth rate over the sending window (after the 200 ms warm-up).
            win = [(t, s) for t, s in samples if 0.3 <= t <= 0.2 + seconds]
            slope = linfit([t for t, _ in win], [s for _, s in win])[0] \
                if len(win) >= 3 else None
            tg = (st.get("targets") or [{}])[0]
            src = st.get("source", {})
            outp = st.get("output", {})
            return {
                "with_target": with_target,
                "sent": sent,
                "output_growth_MBps": slope / 1e6 if slope else None,
                "payload_MBps": sent["bytes"] / sent["seconds"] / 1e6,
                "source_packets": src.get("packets"),
                "output_packets": outp.get("packets"),
                "output_bytes": outp.get("bytes"),
                "kernel_drops": src.get("kernel_drops"),
                "flows_dropped": tg.get("flows_dropped"),
                "bytes_dropped": tg.get("bytes_dropped"),
                "bytes_delivered": tg.get("bytes_delivered"),
                "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
                "exit": rc,
                "cpu_s": ru.ru_utime + ru.ru_stime,
            }
        finally:
            for p in procs:
                stop(p)

    def live_l2(self):
        q = self.a.quick
        seconds = 3 if q else 6
        rate, conns = 30000, 8   # 8 x 1448 B x 30,000/s = ~43 MB/s
        log("L2: %g s of %d 1448-byte requests/s on %d connections, "
            "no target vs a target that never reads" % (seconds, rate, conns))
        self.wait_quiet("L2")
        runs = {"none": [], "noread": []}
        n = max(3, self.a.runs if not q else 3)
        for i in range(n):
            for kind in ("none", "noread"):
                r = self.l2_once("L2-%s-%d" % (kind, i), kind == "noread",
                                 rate, seconds, conns)
                runs[kind].append(r)
                log("  run %d %-6s: output +%s MB/s (payload sent %.1f MB/s),"
                    " %s/%s packets written, kernel drops %s, flows dropped "
                    "%s, peak RSS %.1f MiB"
                    % (i + 1, kind, fmt(r["output_growth_MBps"], ".1f"),
                       r["payload_MBps"], r["output_packets"],
                       r["source_packets"], r["kernel_drops"],
                       r["flows_dropped"], (r["peak_rss_bytes"] or 0) / MIB))
        g_none = median(r["output_growth_MBps"] for r in runs["none"])
        g_stuck = median(r["output_growth_MBps"] for r in runs["noread"])
        p_none = median(r["payload_MBps"] for r in runs["none"])
        p_stuck = median(r["payload_MBps"] for r in runs["noread"])
        self.results["L2"] = {
            "description": "output capture growth with no target vs a "
                           "target that never reads (tmsink --mode noread)",
            "runs": runs,
            "growth_MBps_no_target": g_none,
            "growth_MBps_stuck_target": g_stuck,
            "payload_MBps_no_target": p_none,
            "payload_MBps_stuck_target": p_stuck,
            "ratio": (g_stuck / g_none) if g_none and g_stuck else None,
            "kernel_drops_stuck": sum((r["kernel_drops"] or 0)
                                      for r in runs["noread"]),
            "kernel_drops_none": sum((r["kernel_drops"] or 0)
                                     for r in runs["none"]),
            "all_packets_written": all(
                r["output_packets"] == r["source_packets"]
                for k in runs for r in runs[k]),
            "peak_rss_bytes_stuck": max((r["peak_rss_bytes"] or 0)
                                        for r in runs["noread"]),
        }
        res = self.results["L2"]
        res["targets"] = {
            "output_keeps_up": res["ratio"] is not None
            and res["ratio"] >= 0.9 and res["kernel_drops_stuck"] == 0,
        }

    def live_m1(self):
        nflows = 20000 if self.a.quick else 100000
        log("M1: %d idle connections (handshake, no FIN) replayed from a "
            "pipe" % nflows)
        path = os.path.join(self.scratch, "M1-%d.pcap" % nflows)
        if not os.path.exists(path):
            write_idle_pcap(path, nflows, SERVICE_PORT)
        with open(path, "rb") as fp:
            data = fp.read()
        empty = data[:24]
        self.wait_quiet("M1")
        base = self.m1_once("M1-base", empty, 0)
        runs = []
        for i in range(max(1, min(self.a.runs, 3))):
            r = self.m1_once("M1-%d" % i, data, nflows)
            r["per_flow_bytes"] = (r["rss_idle_bytes"] -
                                   base["rss_idle_bytes"]) / nflows
            r["peak_per_flow_bytes"] = r["peak_rss_bytes"] / nflows \
                if r["peak_rss_bytes"] else None
            log("  run %d: idle RSS %.1f MiB (baseline %.1f MiB) = %.0f B "
                "per flow; VmHWM %.1f MiB = %.0f B per flow; %s flows open, "
                "%s local connections at the target"
                % (i + 1, r["rss_idle_bytes"] / MIB,
                   base["rss_idle_bytes"] / MIB, r["per_flow_bytes"],
                   (r["peak_rss_bytes"] or 0) / MIB,
                   r["peak_per_flow_bytes"] or 0, r["peak_open_flows"],
                   r["sink_peak_concurrent"]))
            runs.append(r)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.results["M1"] = {
            "description": "%d concurrent idle connections (SYN, SYN-ACK, "
                           "ACK; no data, no FIN) fed through a pipe "
                           "(live mode), default --max-connections"
                           % nflows,
            "flows": nflows,
            "nofile_limit": [soft, hard],
            "baseline_rss_bytes": base["rss_idle_bytes"],
            "runs": runs,
            "per_flow_bytes": median(r["per_flow_bytes"] for r in runs),
            "peak_per_flow_bytes": median(r["peak_per_flow_bytes"]
                                          for r in runs),
            "peak_rss_bytes": median(r["peak_rss_bytes"] for r in runs),
        }
        res = self.results["M1"]
        res["targets"] = {
            "lt_2KiB_per_flow": res["peak_per_flow_bytes"] is not None
            and res["peak_per_flow_bytes"] < TARGET_IDLE_FLOW_BYTES,
        }

    def m1_once(self, tag, data, nflows):
        sink, port, manifest = self.sink(tag)
        stats = os.path.join(self.tmp, tag + ".stats.json")
        if os.path.exists(stats):
            os.unlink(stats)
        err = open(os.path.join(self.tmp, tag + ".stderr"), "w+")
        proc = subprocess.Popen(
            [self.a.tapmirror, "replay", "-", "-p", str(SERVICE_PORT),
             "--to", ":%d" % port, "--stats-json", stats, "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
            preexec_fn=raise_nofile)
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
            # Wait until RSS is steady: every flow read and dialled.
            last, steady, t0 = None, 0, time.monotonic()
            rss = 0
            while time.monotonic() - t0 < 120:
                time.sleep(0.5)
                rss = proc_status(proc.pid).get("VmRSS", 0)
                if last is not None and abs(rss - last) <= max(
                        64 * 1024, last // 500):
                    steady += 1
                    if steady >= 4:
                        break
                else:
                    steady = 0
                last = rss
            st_now = proc_status(proc.pid)
            fds = count_fds(proc.pid)
            proc.stdin.close()
            proc.send_signal(signal.SIGTERM)
            rc, ru, _ = wait_pid(proc, 120)
        finally:
            stop(proc)
            stop(sink)
            err.close()
        st = read_json(stats) or {}
        sm = read_json(manifest) or {}
        return {
            "rss_idle_bytes": st_now.get("VmRSS", 0),
            "hwm_idle_bytes": st_now.get("VmHWM", 0),
            "fds": fds,
            "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
            "peak_open_flows": st.get("flows", {}).get("peak_open"),
            "sink_peak_concurrent": sm.get("totals", {}).get(
                "peak_concurrent"),
            "exit": rc,
        }


class SkipWorkload(Exception):
    pass


def parse_size(s):
    for suf, mul in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
                     ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if s.endswith(suf):
            return int(s[:-len(suf)]) * mul
    return int(s)


def ip_csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def write_idle_pcap(path, nflows, port):
    """nflows handshakes (SYN, SYN-ACK, ACK), no data and no FIN: idle
    connections. Ethernet/IPv4, clients 10.X.Y.Z, server 10.255.0.1."""
    server = socket.inet_aton("10.255.0.1")
    eth_c2s = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    eth_s2c = b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x08\x00"
    t0 = 1700000000
    tmp = path + ".tmp"
    with open(tmp, "wb") as fp:
        fp.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        us = 0
        for i in range(nflows):
            client = socket.inet_aton("10.%d.%d.%d" % (
                1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF))
            cport = 10000 + (i % 50000)
            isn_c = (i * 2654435761) & 0xFFFFFFFF
            isn_s = (i * 40503 + 12345) & 0xFFFFFFFF
            pkts = [
                (eth_c2s, client, server, cport, port, isn_c, 0, 0x02),
                (eth_s2c, server, client, port, cport, isn_s,
                 (isn_c + 1) & 0xFFFFFFFF, 0x12),
                (eth_c2s, client, server, cport, port,
                 (isn_c + 1) & 0xFFFFFFFF, (isn_s + 1) & 0xFFFFFFFF, 0x10),
            ]
            for eth, src, dst, sp, dp, seq, ack, flags in pkts:
                tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4,
                                  flags, 65535, 0, 0)
                pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
                tcp = tcp[:16] + struct.pack("!H", ip_csum(pseudo + tcp)) \
                    + tcp[18:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp),
                                 i & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
                ip = ip[:10] + struct.pack("!H", ip_csum(ip)) + ip[12:]
                frame = eth + ip + tcp
                fp.write(struct.pack("<IIII", t0 + us // 1000000,
                                     us % 1000000, len(frame), len(frame)))
                fp.write(frame)
                us += 5
    os.replace(tmp, path)


def machine_info():
    info = {"nproc": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as fp:
            for line in fp:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fp:
            info["mem_total_kib"] = int(fp.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return info


def machine_bound(res, nbytes, nflows):
    """The fastest any replay could be on this machine, from references
    measured in the same run: it must do at least what the socket floor's
    client does (open the connections, send the bytes) and what the bare
    loop does (read the capture), while the receiver runs too, all on
    os.cpu_count() cores. Its wall time is at least the floor's own, and
    at least that CPU time spread perfectly over every core, with no cost
    at all for decoding, reassembly or copying."""
    floor, bare = res["socket_floor"], res["bare_loop"]
    cores = os.cpu_count() or 1
    cpu = floor["cpu_s"] + floor["sink_cpu_s"] + bare["cpu_s"]
    wall = max(floor["wall_s"], cpu / cores)
    return {
        "description": "max(socket floor wall, (floor client CPU + "
                       "receiver CPU + bare loop CPU) / cores): perfect "
                       "parallelism, no decoding, reassembly or copying",
        "cores": cores,
        "cpu_s": cpu,
        "wall_s": wall,
        "mbps": nbytes / wall / 1e6,
        "flows_per_s": nflows / wall,
        "ratio_vs_bare_loop": bare["wall_s"] / wall,
    }


def print_bounds(results):
    """What the targets ask against what this machine allows at best."""
    rows = []
    for name in REPLAY_ORDER:
        r = results.get(name)
        if r is None or "skipped" in r or not r.get("machine_bound"):
            continue
        b, f = r["machine_bound"], r["socket_floor"]
        if name == "W2":
            want = "%.0f flows/s" % TARGET_FLOWS_PER_S
            floor = "%.0f flows/s" % f["flows_per_s"]
            best = "%.0f flows/s" % b["flows_per_s"]
            reach = b["flows_per_s"] >= TARGET_FLOWS_PER_S
        elif name in ("W1", "W3"):
            want = "%.0f MB/s, ratio %.2f" % (TARGET_MBPS, TARGET_RATIO)
            floor = "%.0f MB/s" % f["mbps"]
            best = "%.0f MB/s, ratio %.2f" % (b["mbps"],
                                              b["ratio_vs_bare_loop"])
            reach = (b["mbps"] >= TARGET_MBPS
                     and b["ratio_vs_bare_loop"] >= TARGET_RATIO)
        else:
            continue
        rows.append((name, want, floor, best, "yes" if reach else "no"))
    if not rows:
        return
    hdr = ("workload", "target", "socket floor", "machine bound",
           "reachable here")
    widths = [max(len(x[i]) for x in rows + [hdr]) for i in range(len(hdr))]
    print()
    print("Machine bound: the socket floor's wall time, or its client's "
          "and receiver's CPU plus the bare loop's spread over %d cores, "
          "whichever is longer (no decoding, reassembly or copying):"
          % (os.cpu_count() or 1))
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, hdr))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))


def print_table(results):
    hdr = ("workload", "MB/s", "flows/s", "CPU s", "RSS MiB", "bare MB/s",
           "ratio", "tcpflow s", "vs tcpflow", "floor s", "vs floor",
           "delivered")
    rows = []
    for name in REPLAY_ORDER:
        r = results.get(name)
        if r is None:
            continue
        if "skipped" in r:
            rows.append((name, "skipped: " + r["skipped"]) + ("",) * 10)
            continue
        t = r["tapmirror"]
        tf = r["tcpflow"]
        ok = r["targets"]["delivered_ok"]
        rows.append((
            name, "%.0f" % t["mbps"], "%.0f" % t["flows_per_s"],
            "%.3f" % t["cpu_s"], "%.1f" % (t["peak_rss_bytes"] / MIB),
            "%.0f" % r["bare_loop"]["mbps"],
            "%.2f" % r["ratio_vs_bare_loop"],
            "%.3f" % tf["wall_s"] if tf else "-",
            "%.1fx" % r["speedup_vs_tcpflow"] if tf else "-",
            "%.3f" % r["socket_floor"]["wall_s"]
            if r.get("socket_floor") else "-",
            "%.2f" % r["ratio_vs_socket_floor"]
            if r.get("socket_floor") else "-",
            ("OK" if ok else "FAIL") + (
                " (gaps %s=%s)" % (r["check"]["gaps"],
                                   r["check"]["expected_gaps"])
                if r["capture"]["gaps"] else "")))
    if rows:
        widths = [max(len(str(x[i])) for x in rows + [hdr])
                  for i in range(len(hdr))]
        line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, hdr))
        print(line)
        print("-" * len(line))
        for row in rows:
            print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))
    for name in LIVE_ORDER:
        r = results.get(name)
        if r is None:
            continue
        if "skipped" in r:
            print("%s: skipped: %s" % (name, r["skipped"]))
        elif name == "L1":
            d = r["direct"]
            print("L1: latency p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max "
                  "%.0f us (medians of runs); kernel drops %s total; all "
                  "delivered: %s; direct without capture: p50 %.0f us, p99 "
                  "%.0f us"
                  % (r["p50_us"], r["p99_us"], r["p999_us"], r["max_us"],
                     r["kernel_drops_total"], r["all_requests_delivered"],
                     d["p50_us"], d["p99_us"]))
            for g in r["rate_sweep"]:
                td = g.get("tcpdump")
                print("L1R %.2f Gbit/s: %.2f achieved, kernel drops %s total, "
                      "p99 %s us (direct %s us), all bytes delivered: %s%s"
                      % (g["target_gbps"], g["achieved_gbps"],
                         g["kernel_drops_total"], fmt(g["p99_us"], ".0f"),
                         fmt(g["direct_p99_us"], ".0f"),
                         g["all_bytes_delivered"],
                         "; tcpdump alone: %.2f Gbit/s, drops %s total"
                         % (td["achieved_gbps"], td["kernel_drops_total"])
                         if td else ""))
        elif name == "L2":
            print("L2: output growth %s MB/s with a stuck target vs %s MB/s "
                  "with none (ratio %s); kernel drops %s vs %s; every packet "
                  "written: %s; peak RSS (stuck) %.1f MiB"
                  % (fmt(r["growth_MBps_stuck_target"], ".1f"),
                     fmt(r["growth_MBps_no_target"], ".1f"),
                     fmt(r["ratio"], ".2f"), r["kernel_drops_stuck"],
                     r["kernel_drops_none"], r["all_packets_written"],
                     r["peak_rss_bytes_stuck"] / MIB))
        elif name == "M1":
            print("M1: %d idle flows: VmHWM %.1f MiB = %.0f B/flow; idle RSS "
                  "above baseline %.0f B/flow"
                  % (r["flows"], r["peak_rss_bytes"] / MIB,
                     r["peak_per_flow_bytes"], r["per_flow_bytes"]))


def print_http_table(results):
    """H1/H2: each variant's throughput and cost, and the ratio of the
    second variant to the first against the workload's target."""
    names = [n for n in HTTP_ORDER if n in results]
    if not names:
        return
    hdr = ("workload", "variant", "req/s", "MB/s", "CPU s", "RSS MiB",
           "floor s", "vs floor", "ratio", "target", "delivered")
    rows = []
    for name in names:
        r = results[name]
        if "skipped" in r:
            rows.append((name, "skipped: " + r["skipped"]) + ("",) * 9)
            continue
        fl = r.get("floor")
        for i, (vname, v) in enumerate(r["variants"].items()):
            if "skipped" in v:
                rows.append((name, vname, "skipped") + ("",) * 8)
                continue
            ratio = r["ratio"] if i == 1 else None
            rows.append((
                name, vname, "%.0f" % v["requests_per_s"],
                "%.1f" % v["client_mbps"], "%.3f" % v["cpu_s"],
                "%.1f" % ((v["peak_rss_bytes"] or 0) / MIB),
                "%.3f" % fl["wall_s"] if fl else "-",
                "%.2f" % v["ratio_vs_floor"] if fl else "-",
                "%.2f" % ratio if ratio is not None else "",
                (">= %.2f: %s" % (r["target_ratio"],
                                  "met" if ratio >= r["target_ratio"]
                                  else "NOT met"))
                if ratio is not None else "",
                "OK" if v["check"]["ok"] and v["all_runs_ok"] else "FAIL"))
    print()
    print("Keep-alive HTTP/1.1 (req/s: the capture's requests over the wall "
          "time until tapmirror and the target have exited; MB/s: client "
          "bytes; ratio: the second variant's throughput over the first's):")
    widths = [max(len(str(x[i])) for x in rows + [hdr])
              for i in range(len(hdr))]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, hdr))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)).rstrip())
    for name in names:
        r = results[name]
        for vname, v in r.get("variants", {}).items():
            if "skipped" in v:
                print("%s %s: skipped: %s" % (name, vname, v["skipped"]))
        mb = r.get("max_buffer_bytes")
        peaks = [v["max_peak_rss_bytes"] for v in r.get("variants", {})
                 .values() if "runs" in v]
        if mb and peaks:
            print("%s: highest peak RSS %.1f MiB against --max-buffer %.0f "
                  "MiB: %s" % (name, max(peaks) / MIB, mb / MIB,
                               "within" if max(peaks) <= mb else "ABOVE"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tapmirror", required=True)
    ap.add_argument("--tmgen", required=True)
    ap.add_argument("--tmsink", required=True)
    ap.add_argument("--pcapread", required=True)
    ap.add_argument("--latency",
                    help="bench_latency (default: next to --pcapread)")
    ap.add_argument("--connloop",
                    help="bench_connloop (default: next to --pcapread)")
    ap.add_argument("--httpgen",
                    help="bench_httpgen (default: next to --pcapread)")
    ap.add_argument("--httptarget",
                    help="bench_httptarget (default: next to --pcapread)")
    ap.add_argument("--httpfloor",
                    help="bench_httpfloor (default: next to --pcapread)")
    ap.add_argument("--max-buffer", default=None,
                    help="H workloads: pass --max-buffer SIZE to every "
                         "replay (default: tapmirror's own default, read "
                         "from its --help); peak RSS is reported against it")
    ap.add_argument("--tcpflow", default=shutil.which("tcpflow"),
                    help="tcpflow binary (default: from PATH; 'none' skips)")
    ap.add_argument("--tcpdump", default=shutil.which("tcpdump") or (
        "/usr/sbin/tcpdump" if os.access("/usr/sbin/tcpdump", os.X_OK)
        else None), help="tcpdump, the live-capture reference (default: "
                         "from PATH; 'none' skips)")
    ap.add_argument("--runs", type=int, default=None,
                    help="timed runs per workload (default 5, --quick 3)")
    ap.add_argument("--quick", action="store_true",
                    help="smaller workloads, 3 runs")
    ap.add_argument("--only", default="",
                    help="comma-separated subset of W1,W2,W3,W4,H1,H2,L1,L2,"
                         "M1")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--scratch",
                    default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                         "tapmirror-bench"),
                    help="where captures are generated and kept "
                         "(default $TMPDIR/tapmirror-bench)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before one run is killed")
    ap.add_argument("--wait-load", type=float, default=0,
                    help="before each workload's timed runs, wait while the "
                         "1-minute load average is above this")
    ap.add_argument("--wait-max", type=float, default=1200,
                    help="wait at most this long for --wait-load (s)")
    ap.add_argument("--gbps", default=None,
                    help="L1R rates in Gbit/s, comma-separated (default "
                         "1,0.5,0.25; --quick 1)")
    ap.add_argument("--capture-args", default="",
                    help="extra options for every `tapmirror capture` of "
                         "L1/L2 (experiments, e.g. \"--kernel-buffer 256MiB\")")
    ap.add_argument("--no-tcpflow-w2", action="store_true",
                    help="do not run tcpflow on W2 (100,000 output files)")
    a = ap.parse_args()
    if a.runs is None:
        a.runs = 3 if a.quick else 5
    if a.gbps is None:
        a.gbps = "1" if a.quick else "1,0.5,0.25"
    a.gbps = [float(x) for x in a.gbps.split(",") if x.strip()]
    if a.tcpflow in ("none", ""):
        a.tcpflow = None
    if a.tcpdump in ("none", ""):
        a.tcpdump = None
    if a.latency is None:
        a.latency = os.path.join(os.path.dirname(a.pcapread), "bench_latency")
    if a.connloop is None:
        a.connloop = os.path.join(os.path.dirname(a.pcapread),
                                  "bench_connloop")
    for k in ("httpgen", "httptarget", "httpfloor"):
        if getattr(a, k) is None:
            setattr(a, k, os.path.join(os.path.dirname(a.pcapread),
                                       "bench_" + k))
    for k in ("tapmirror", "tmgen", "tmsink", "pcapread"):
        p = getattr(a, k)
        if not os.access(p, os.X_OK):
            ap.error("--%s %s is not an executable" % (k, p))
    a.scratch = os.path.abspath(a.scratch)
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    if (a.scratch + os.sep).startswith(repo + os.sep):
        ap.error("--scratch must be outside the repository")
    only = [x.strip().upper() for x in a.only.split(",") if x.strip()]
    every = REPLAY_ORDER + HTTP_ORDER + LIVE_ORDER
    names = [n for n in every if not only or n in only]
    unknown = set(only) - set(every)
    if unknown:
        ap.error("unknown workload(s): " + ",".join(sorted(unknown)))

    raise_nofile()
    b = Bench(a)
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "loadavg_start": loadavg(),
        "runs": a.runs, "quick": a.quick,
        "tapmirror": a.tapmirror,
        "tcpflow": a.tcpflow,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "capture_args": a.capture_args,
    }
    try:
        meta["tapmirror_version"] = subprocess.run(
            [a.tapmirror, "--version"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT).stdout.decode().strip()
    except OSError:
        pass
    try:
        meta["git"] = subprocess.run(
            ["git", "-C", repo, "describe", "--always", "--dirty"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ).stdout.decode().strip()
    except OSError:
        pass
    live_ok = os.access(a.latency, os.X_OK)
    try:
        for name in names:
            try:
                if name in WORKLOADS:
                    b.replay_workload(name)
                elif name in HTTP_WORKLOADS:
                    b.http_workload(name)
                elif not live_ok:
                    raise SkipWorkload("no bench_latency at " + a.latency)
                elif name == "L1":
                    b.live_l1()
                elif name == "L2":
                    b.live_l2()
                elif name == "M1":
                    b.live_m1()
            except SkipWorkload as e:
                log("%s: skipped: %s" % (name, e))
                b.results[name] = {"skipped": str(e)}
    finally:
        b.cleanup()
    meta["loadavg_end"] = loadavg()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print()
    print("tapmirror benchmarks: medians of %d runs; load average %s -> %s"
          % (a.runs, " ".join("%.2f" % x for x in meta["loadavg_start"]),
             " ".join("%.2f" % x for x in meta["loadavg_end"])))
    print_table(b.results)
    print_bounds(b.results)
    print_http_table(b.results)
    failed = [n for n, r in b.results.items()
              if "targets" in r and (n in WORKLOADS or n in HTTP_WORKLOADS)
              and not r["targets"]["delivered_ok"]]
    if a.out:
        out = {"meta": meta, "results": b.results}
        tmp = a.out + ".tmp"
        with open(tmp, "w") as fp:
            json.dump(out, fp, indent=1, sort_keys=True)
            fp.write("\n")
        os.replace(tmp, a.out)
        print("results written to " + a.out)
    if failed:
        print("delivery check FAILED for " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
