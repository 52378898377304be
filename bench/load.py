#!/usr/bin/env python3
"""tapmirror load test (docs/RELIABILITY.md); not part of `make check`.

    python3 bench/load.py --tapmirror PATH --tmgen PATH --tmsink PATH
        [--concurrent 175000] [--rounds 3] [--total 1000000]
        [--scratch DIR] [--out FILE.json] [--only concurrent,million]

Two runs, each checked against tmsink's count of connections and bytes:

concurrent  --rounds captures of --concurrent flows, all in progress at
            once in the capture (200 client bytes each; tmgen interleaves
            their packets at random, so at the peak about 60% of them are
            open at the same time: 175,000 give over 100,000), are written
            one round after the other into the standard input of one
            `tapmirror replay -` (a live source). After each round has
            been delivered and tapmirror is idle, its resident memory
            (VmRSS, VmHWM) and descriptors are sampled: later rounds must
            not raise the peak by more than 8 MiB, and what stays
            resident between rounds must stay below the first round's
            peak. Peak RSS per live flow is (VmHWM -
            RSS before the first round) / the peak of open flows
            (flows.peak_open in the stats); the run fails if that peak is
            under 100,000 at the default size.

million     one capture of --total flows (200 client bytes each, 500 at
            a time) replayed from a file; VmRSS is sampled every 0.5 s
            together with how far tapmirror has read (/proc/PID/io
            rchar), and the samples from the second half of the file must
            stay within the first half's maximum plus 8 MiB.

tapmirror's descriptor limit is raised (root may raise the hard limit) so
that the concurrent run can hold every flow's connection open; tmsink
needs as many. Captures are generated into --scratch (default
$TMPDIR/tapmirror-load) and reused while their options are unchanged.
Only the Python 3 standard library is used. Exit 0 when every check
passes, 1 otherwise.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import count_fds, log, proc_status, read_json, wait_file

MIB = 1024 * 1024
PORT = 8080
FLOW_BYTES = 200
NOFILE = 262144
GROWTH_BOUND = 8 * MIB


def raise_nofile():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as fp:
            f = fp.read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except (OSError, IndexError, ValueError):
        return None


def rchar(pid):
    try:
        with open("/proc/%d/io" % pid) as fp:
            for line in fp:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def generate(a, name, args):
    """tmgen into the scratch directory, reused while args are unchanged."""
    path = os.path.join(a.scratch, name + ".pcap")
    key = path + ".args"
    want = json.dumps(args)
    if os.path.exists(path) and os.path.exists(key):
        with open(key) as fp:
            if fp.read() == want:
                return path
    log("  generating %s (%s)" % (name, " ".join(args)))
    subprocess.run([a.tmgen, "-o", path] + args, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(key, "w") as fp:
        fp.write(want)
    return path


def start_sink(tmp, tag, expect):
    port_file = os.path.join(tmp, tag + ".port")
    manifest = os.path.join(tmp, tag + ".sink.json")
    proc = subprocess.Popen(
        [a_global.tmsink, "--port-file", port_file, "--manifest", manifest,
         "--no-hash", "--quiet", "--expect", str(expect),
         "--timeout", "%ds" % a_global.timeout],
        stdout=subprocess.DEVNULL, preexec_fn=raise_nofile)
    return proc, int(wait_file(port_file, proc)), manifest


def finish(proc, timeout):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_idle(pid, settle):
    """Until tapmirror has used no CPU for `settle` seconds."""
    last, since = cpu_ticks(pid), time.monotonic()
    deadline = time.monotonic() + a_global.timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_ticks(pid)
        if now is None:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return


def check_sink(manifest, expect, failures, tag):
    sm = read_json(manifest) or {}
    totals = sm.get("totals", {})
    ok = (totals.get("connections") == expect and
          totals.get("complete") == expect and
          totals.get("bytes") == expect * FLOW_BYTES)
    if not ok:
        failures.append("%s: the receiver got %s, expected %d complete "
                        "connections of %d bytes"
                        % (tag, totals, expect, FLOW_BYTES))
    return totals


def run_concurrent(a, tmp, failures):
    n, rounds = a.concurrent, a.rounds
    log("concurrent: %d rounds of %d flows open at once, through a pipe"
        % (rounds, n))
    paths = [generate(a, "concurrent-%d-r%d" % (n, r),
                      ["--flows", str(n), "--concurrency", str(n),
                       "--size", str(FLOW_BYTES), "--seed", str(r + 1),
                       "--start-time", str(1700000000 + 1000 * r)])
             for r in range(rounds)]
    sink, port, manifest = start_sink(tmp, "concurrent", n * rounds)
    stats = os.path.join(tmp, "concurrent.stats.json")
    err = open(os.path.join(tmp, "concurrent.stderr"), "w+")
    proc = subprocess.Popen(
        [a.tapmirror, "replay", "-", "-p", str(PORT), "--to", ":%d" % port,
         "--stats-json", stats, "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
        preexec_fn=raise_nofile)
    samples = []
    try:
        time.sleep(0.5)
        base = proc_status(proc.pid).get("VmRSS", 0)
        for r, path in enumerate(paths):
            t0 = time.monotonic()
            with open(path, "rb") as fp:
                data = fp.read()
            # Later rounds continue the same stream: skip the file header.
            proc.stdin.write(data if r == 0 else data[24:])
            proc.stdin.flush()
            wait_idle(proc.pid, 3.0)
            st = proc_status(proc.pid)
            s = {"round": r + 1, "seconds": round(time.monotonic() - t0, 1),
                 "rss_bytes": st.get("VmRSS", 0),
                 "hwm_bytes": st.get("VmHWM", 0),
                 "fds": count_fds(proc.pid)}
            samples.append(s)
            log("  round %d: %.1f s, RSS %.1f MiB, VmHWM %.1f MiB, %s fds"
                % (s["round"], s["seconds"], s["rss_bytes"] / MIB,
                   s["hwm_bytes"] / MIB, s["fds"]))
        proc.stdin.close()
        rc = finish(proc, a.timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    finish(sink, 30)
    st = read_json(stats) or {}
    totals = check_sink(manifest, n * rounds, failures, "concurrent")
    flows = st.get("flows", {})
    peak = st.get("process", {}).get("peak_rss_bytes") or 0
    res = {
        "flows_per_round": n, "rounds": rounds, "exit": rc,
        "baseline_rss_bytes": base, "samples": samples,
        "peak_rss_bytes": peak,
        "peak_open_flows": flows.get("peak_open"),
        "peak_rss_per_live_flow_bytes": (peak - base) / flows["peak_open"]
        if peak and flows.get("peak_open") else None,
        "flows": flows, "receiver": totals,
        "targets": st.get("targets"),
    }
    if rc != 0:
        failures.append("concurrent: tapmirror exited %s" % rc)
    if n >= 175000 and (flows.get("peak_open") or 0) < 100000:
        failures.append("concurrent: only %s flows open at the peak"
                        % flows.get("peak_open"))
    if flows.get("completed") != n * rounds:
        failures.append("concurrent: %s flows completed, expected %d"
                        % (flows.get("completed"), n * rounds))
    if len(samples) > 1:
        # Each round must fit in the memory the first one needed: the peak
        # does not grow, and what is resident between rounds stays below it.
        growth = samples[-1]["hwm_bytes"] - samples[0]["hwm_bytes"]
        res["peak_growth_after_first_round_bytes"] = growth
        if growth > GROWTH_BOUND:
            failures.append("concurrent: the peak RSS grew by %.1f MiB after "
                            "the first round" % (growth / MIB))
        idle = max(x["rss_bytes"] for x in samples)
        if idle > samples[0]["hwm_bytes"]:
            failures.append("concurrent: %.1f MiB resident between rounds, "
                            "more than the first round's peak"
                            % (idle / MIB))
    log("  peak RSS %.1f MiB with %s flows open: %.0f bytes per live flow "
        "(baseline %.1f MiB)" % (peak / MIB, flows.get("peak_open"),
                                res["peak_rss_per_live_flow_bytes"] or 0,
                                base / MIB))
    return res


def run_million(a, tmp, failures):
    n = a.total
    log("million: %d flows (500 at a time) replayed from a file" % n)
    path = generate(a, "million-%d" % n,
                    ["--flows", str(n), "--concurrency", "500",
                     "--size", str(FLOW_BYTES)])
    size = os.path.getsize(path)
    sink, port, manifest = start_sink(tmp, "million", n)
    stats = os.path.join(tmp, "million.stats.json")
    err = open(os.path.join(tmp, "million.stderr"), "w+")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [a.tapmirror, "replay", path, "-p", str(PORT), "--to",
         ":%d" % port, "--stats-json", stats, "-q"],
        stdout=subprocess.DEVNULL, stderr=err, preexec_fn=raise_nofile)
    samples = []
    try:
        while proc.poll() is None and time.monotonic() - t0 < a.timeout:
            time.sleep(0.5)
            rss = proc_status(proc.pid).get("VmRSS")
            done = rchar(proc.pid)
            if rss and done is not None:
                samples.append((min(done / size, 1.0), rss))
        rc = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    seconds = time.monotonic() - t0
    finish(sink, 30)
    st = read_json(stats) or {}
    totals = check_sink(manifest, n, failures, "million")
    flows = st.get("flows", {})
    first = [r for f, r in samples if f <= 0.5]
    second = [r for f, r in samples if f > 0.5]
    deciles = {}
    for f, r in samples:
        deciles.setdefault(min(int(f * 10), 9), r)
    res = {
        "flows": n, "exit": rc, "seconds": round(seconds, 1),
        "flows_per_second": round(n / seconds),
        "peak_rss_bytes": st.get("process", {}).get("peak_rss_bytes"),
        "peak_open_flows": flows.get("peak_open"),
        "rss_first_half_max_bytes": max(first) if first else None,
        "rss_second_half_max_bytes": max(second) if second else None,
        "rss_by_decile_bytes": [deciles.get(d) for d in range(10)],
        "flow_counters": flows, "receiver": totals,
    }
    if rc != 0:
        failures.append("million: tapmirror exited %s" % rc)
    if flows.get("completed") != n:
        failures.append("million: %s flows completed, expected %d"
                        % (flows.get("completed"), n))
    if first and second and max(second) > max(first) + GROWTH_BOUND:
        failures.append("million: RSS grew from %.1f MiB (first half) to "
                        "%.1f MiB (second half)"
                        % (max(first) / MIB, max(second) / MIB))
    log("  %.1f s (%d flows/s); RSS by tenth of the file (MiB): %s; peak "
        "%.1f MiB" % (seconds, res["flows_per_second"],
                      " ".join("%.1f" % (r / MIB) if r else "-"
                               for r in res["rss_by_decile_bytes"]),
                      (res["peak_rss_bytes"] or 0) / MIB))
    return res


a_global = None


def main():
    global a_global
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tapmirror", required=True)
    ap.add_argument("--tmgen", required=True)
    ap.add_argument("--tmsink", required=True)
    ap.add_argument("--concurrent", type=int, default=175000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--total", type=int, default=1000000)
    ap.add_argument("--only", default="concurrent,million")
    ap.add_argument("--scratch", default=os.path.join(
        tempfile.gettempdir(), "tapmirror-load"))
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds before one run is abandoned")
    ap.add_argument("--out")
    a = a_global = ap.parse_args()
    os.makedirs(a.scratch, exist_ok=True)
    failures, results = [], {}
    with tempfile.TemporaryDirectory(prefix="tapmirror-load-") as tmp:
        only = a.only.split(",")
        if "concurrent" in only:
            results["concurrent"] = run_concurrent(a, tmp, failures)
        if "million" in only:
            results["million"] = run_million(a, tmp, failures)
    results["failures"] = failures
    results["loadavg"] = list(os.getloadavg())
    if a.out:
        with open(a.out, "w") as fp:
            json.dump(results, fp, indent=1)
    for f in failures:
        log("FAIL " + f)
    log("load: %s" % ("OK" if not failures else "FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
