#!/usr/bin/env python3
"""tapmirror soak test (docs/BENCHMARKS.md); not part of `make check`.

    python3 bench/soak.py --tapmirror PATH --tmsink PATH [--minutes 30]
        [--quick] [--rate 50] [--mode capture|pipe] [--tmgen PATH]
        [--out FILE.json]

Runs a steady rate of mixed connections through tapmirror for --minutes
(default 30; --quick: 2) and samples tapmirror's resident memory
(/proc/PID/status VmRSS) and open descriptors (/proc/PID/fd) every
--interval seconds (default 10). Reports start, end and maximum of both and
a least-squares slope, and fails (exit 1) if either grows beyond a small
bound after the warm-up (the first third of the run, at most 10 minutes,
at least 30 s).

--mode capture (the default as root): `tapmirror capture -i lo` taps a
loopback service run by this script and replays to tmsink. The load
(--rate new connections per second, asyncio, one process):

  78%  short: 1-5 requests of 100 B-8 KiB, a reply read after each, FIN
  10%  reset: 1-3 requests, then closed with SO_LINGER 0 (RST)
   8%  long-lived: a request every 1-5 s for 20-90 s, then FIN
   2%  abandoned: one request, then silent for 6 minutes (longer than
       --idle-timeout's default of 5 minutes) before the close
   2%  bulk: 1-4 MiB in one go, then FIN

Runs shorter than 30 minutes scale the lifetimes (long-lived, abandoned)
and tapmirror's --idle-timeout by minutes/30, so the warm-up still
reaches the plateau.

--mode pipe (without CAP_NET_RAW): tmgen's capture stream (--flows large,
mixed sizes, 5% resets, 1% midstream) is fed through a rate-limited pipe
into `tapmirror replay -` (a live source) with the timestamps spaced to
match the wall clock.

Only the Python 3 standard library is used.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import linfit, log, raise_nofile, wait_file

MIB = 1024 * 1024


def proc_sample(pid):
    rss = None
    try:
        with open("/proc/%d/status" % pid) as fp:
            for line in fp:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        return None
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
    cpu = None
    try:
        with open("/proc/%d/stat" % pid) as fp:
            f = fp.read().rsplit(")", 1)[1].split()
            cpu = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return rss, fds, cpu


def stop(proc, sig=signal.SIGTERM, timeout=30):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# ---- the load (capture mode) ----

class Load:
    def __init__(self, rate, seed, scale=1.0):
        self.rate = rate
        self.scale = scale  # lifetimes shrink with short runs
        self.rng = random.Random(seed)
        self.counts = {"short": 0, "reset": 0, "long": 0, "abandoned": 0,
                       "bulk": 0, "errors": 0}
        self.active = 0
        self.sent = 0
        self.received = 0   # client bytes the service read
        self.stopping = False
        self.tasks = set()

    async def serve(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.received += len(data)
                writer.write(b"OK\n")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def request(self, reader, writer, n):
        writer.write(os.urandom(16) + b"x" * (n - 16))
        self.sent += n
        await writer.drain()
        await reader.read(64)

    async def client(self, port, kind):
        self.active += 1
        rng = self.rng
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if kind == "short":
                for _ in range(rng.randint(1, 5)):
                    await self.request(reader, writer, rng.randint(100, 8192))
                    await asyncio.sleep(rng.uniform(0, 0.02))
            elif kind == "reset":
                for _ in range(rng.randint(1, 3)):
                    await self.request(reader, writer, rng.randint(100, 8192))
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            elif kind == "long":
                end = time.monotonic() + max(
                    2.0, rng.uniform(20, 90) * self.scale)
                while time.monotonic() < end and not self.stopping:
                    await self.request(reader, writer, rng.randint(100, 4096))
                    await asyncio.sleep(rng.uniform(1, 5))
            elif kind == "abandoned":
                await self.request(reader, writer, rng.randint(100, 2048))
                end = time.monotonic() + 360 * self.scale
                while time.monotonic() < end and not self.stopping:
                    await asyncio.sleep(1)
            elif kind == "bulk":
                n = rng.randint(1 * MIB, 4 * MIB)
                writer.write(b"B" * n)
                self.sent += n
                await writer.drain()
            if kind != "reset":
                # A clean FIN: half-close, then read the replies to EOF
                # (closing with unread data would send a reset).
                writer.write_eof()
                while await reader.read(65536):
                    pass
            self.counts[kind] += 1
        except (ConnectionError, OSError):
            self.counts["errors"] += 1
        finally:
            if writer is not None:
                writer.close()
                try:
                    await writer.wait_closed()
                except (ConnectionError, OSError):
                    pass
            self.active -= 1

    def pick(self):
        x = self.rng.random() * 100
        for kind, pct in (("short", 78), ("reset", 10), ("long", 8),
                          ("abandoned", 2), ("bulk", 2)):
            if x < pct:
                return kind
            x -= pct
        return "short"

    async def generate(self, port, until):
        interval = 1.0 / self.rate
        nxt = time.monotonic()
        while time.monotonic() < until:
            nxt += interval
            t = asyncio.ensure_future(self.client(port, self.pick()))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
            delay = nxt - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self.stopping = True
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=30)


# ---- sampling ----

class Sampler:
    def __init__(self, pid, interval, t0):
        self.pid = pid
        self.interval = interval
        self.t0 = t0
        self.samples = []
        self.ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.ev.is_set():
            s = proc_sample(self.pid)
            if s is None:
                break
            t = time.monotonic() - self.t0
            self.samples.append({"t": round(t, 1), "rss": s[0],
                                 "fds": s[1], "cpu_s": s[2]})
            log("  %6.0f s: RSS %.2f MiB, %d fds, cpu %.1f s"
                % (t, s[0] / MIB, s[1], s[2] or 0))
            self.ev.wait(self.interval)


def analyse(samples, warmup, rss_bound, fd_bound):
    out = {}
    ok = True
    for key, bound in (("rss", rss_bound), ("fds", fd_bound)):
        vals = [s[key] for s in samples]
        warm = [s[key] for s in samples if s["t"] < warmup]
        post = [(s["t"], s[key]) for s in samples if s["t"] >= warmup]
        r = {"start": vals[0] if vals else None,
             "end": vals[-1] if vals else None,
             "max": max(vals) if vals else None,
             "max_warmup": max(warm) if warm else None,
             "bound": bound}
        if len(post) >= 3:
            slope, _ = linfit([t for t, _ in post], [v for _, v in post])
            span = post[-1][0] - post[0][0]
            r["slope_per_min"] = slope * 60
            r["projected_growth"] = slope * span
            r["growth_after_warmup"] = max(v for _, v in post) - post[0][1]
            # Growth past the warm-up's own maximum, and the fitted trend.
            over = max(v for _, v in post) - (r["max_warmup"] or post[0][1])
            r["above_warmup_max"] = over
            r["ok"] = r["projected_growth"] <= bound and over <= bound
        else:
            r["ok"] = None
        if r["ok"] is False:
            ok = False
        out[key] = r
    return out, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tapmirror", required=True)
    ap.add_argument("--tmsink", required=True)
    ap.add_argument("--tmgen", help="for --mode pipe")
    ap.add_argument("--minutes", type=float, default=None,
                    help="duration (default 30; --quick 2)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--interval", type=float, default=10.0,
                    help="seconds between samples (default 10)")
    ap.add_argument("--rate", type=float, default=50.0,
                    help="new connections per second (default 50)")
    ap.add_argument("--mode", choices=("capture", "pipe"),
                    default="capture" if os.geteuid() == 0 else "pipe")
    ap.add_argument("--rss-bound", type=float, default=8.0,
                    help="MiB of RSS growth allowed after warm-up "
                         "(default 8)")
    ap.add_argument("--fd-bound", type=int, default=64,
                    help="descriptors of growth allowed after warm-up "
                         "(default 64)")
    ap.add_argument("--batch-above", default=None,
                    help="--mode capture: passed to tapmirror (a low rate, "
                    "such as 100, makes the capture switch rings often)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write the samples and verdict as JSON")
    a = ap.parse_args()
    if a.minutes is None:
        a.minutes = 2.0 if a.quick else 30.0
    if a.quick and a.interval == 10.0:
        a.interval = 5.0
    duration = a.minutes * 60
    warmup = min(600.0, max(30.0, duration / 3))
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="tapmirror-soak-")
    procs = []
    try:
        sink_port_file = os.path.join(tmp, "sink.port")
        sink_manifest = os.path.join(tmp, "sink.json")
        sink = subprocess.Popen(
            [a.tmsink, "--port-file", sink_port_file, "--no-hash", "--quiet",
             "--manifest", sink_manifest], stdout=subprocess.DEVNULL,
            preexec_fn=raise_nofile)
        procs.append(sink)
        sink_port = int(wait_file(sink_port_file, sink))
        stats = os.path.join(tmp, "stats.json")
        log("soak: %s mode, %.0f min, %g connections/s, samples every %g s,"
            " warm-up %.0f s" % (a.mode, a.minutes, a.rate, a.interval,
                                 warmup))
        load0 = os.getloadavg()
        if a.mode == "capture":
            result = run_capture(a, tmp, sink_port, stats, duration, warmup,
                                 procs)
        else:
            result = run_pipe(a, tmp, sink_port, stats, duration, procs)
        stop(sink)
        st = {}
        try:
            with open(stats) as fp:
                st = json.load(fp)
        except (OSError, ValueError):
            pass
        samples = result["samples"]
        verdict, ok = analyse(samples, warmup, a.rss_bound * MIB, a.fd_bound)
        if result.get("exit") not in (0, None):
            ok = False
        report = {
            "mode": a.mode, "minutes": a.minutes, "rate": a.rate,
            "interval": a.interval, "warmup_s": warmup,
            "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()),
            "samples": samples, "rss": verdict["rss"], "fds": verdict["fds"],
            "tapmirror_exit": result.get("exit"),
            "load": result.get("load"),
            "stats": {k: st.get(k) for k in ("source", "flows", "targets",
                                             "process", "output")},
            "ok": ok,
        }
        r, f = verdict["rss"], verdict["fds"]
        print("soak %s, %.0f min at %g conn/s: %s"
              % (a.mode, a.minutes, a.rate, "OK" if ok else "FAILED"))
        print("  RSS MiB: start %.2f, end %.2f, max %.2f (warm-up max %.2f);"
              " after warm-up slope %+.3f MiB/min, projected %+.2f MiB "
              "(bound %.0f)"
              % (r["start"] / MIB, r["end"] / MIB, r["max"] / MIB,
                 (r["max_warmup"] or 0) / MIB,
                 r.get("slope_per_min", 0) / MIB,
                 r.get("projected_growth", 0) / MIB, a.rss_bound))
        print("  fds: start %d, end %d, max %d (warm-up max %s); after "
              "warm-up slope %+.2f/min, projected %+.1f (bound %d)"
              % (f["start"], f["end"], f["max"], f["max_warmup"],
                 f.get("slope_per_min", 0), f.get("projected_growth", 0),
                 a.fd_bound))
        fl = st.get("flows") or {}
        tg = (st.get("targets") or [{}])[0]
        src = st.get("source") or {}
        print("  tapmirror: exit %s, %s flows seen, %s completed, %s reset, "
              "%s expired; %s bytes delivered, %s flows dropped; kernel "
              "drops %s; delivery switches %s"
              % (result.get("exit"), fl.get("seen"), fl.get("completed"),
                 fl.get("reset"), fl.get("expired"),
                 tg.get("bytes_delivered"), tg.get("flows_dropped"),
                 src.get("kernel_drops"), src.get("delivery_switches")))
        if result.get("load"):
            print("  load: %s" % json.dumps(result["load"]))
        if a.out:
            with open(a.out + ".tmp", "w") as fp:
                json.dump(report, fp, indent=1)
                fp.write("\n")
            os.replace(a.out + ".tmp", a.out)
            print("  written to " + a.out)
        return 0 if ok else 1
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def run_capture(a, tmp, sink_port, stats, duration, warmup, procs):
    # Runs shorter than 30 minutes scale the connection lifetimes and
    # tapmirror's --idle-timeout down, so that the warm-up still covers the
    # plateau (abandoned connections expiring).
    scale = min(1.0, duration / 1800.0)
    load = Load(a.rate, a.seed, scale)
    extra = [] if scale >= 1.0 else [
        "--idle-timeout", "%ds" % max(5, int(300 * scale))]
    if a.batch_above is not None:
        extra += ["--batch-above", a.batch_above]

    async def main_async():
        server = await asyncio.start_server(load.serve, "127.0.0.1", 0,
                                            backlog=4096)
        port = server.sockets[0].getsockname()[1]
        cap = subprocess.Popen(
            [a.tapmirror, "capture", "-i", "lo", "-p", str(port), "--to",
             ":%d" % sink_port, "-o", "/dev/null", "--stats-json", stats,
             "-q"] + extra, stdout=subprocess.DEVNULL, preexec_fn=raise_nofile)
        procs.append(cap)
        await asyncio.sleep(1.0)
        if cap.poll() is not None:
            raise SystemExit("tapmirror capture exited with %s (needs root or"
                             " CAP_NET_RAW; try --mode pipe)" % cap.returncode)
        t0 = time.monotonic()
        sampler = Sampler(cap.pid, a.interval, t0)
        sampler.th.start()
        await load.generate(port, t0 + duration)
        sampler.ev.set()
        sampler.th.join()
        final = proc_sample(cap.pid)
        if final:
            sampler.samples.append({"t": round(time.monotonic() - t0, 1),
                                    "rss": final[0], "fds": final[1],
                                    "cpu_s": final[2]})
        await asyncio.sleep(1.0)
        rc = await asyncio.get_running_loop().run_in_executor(
            None, stop, cap)
        server.close()
        return {"samples": sampler.samples, "exit": rc}

    res = asyncio.run(main_async())
    res["load"] = {"connections": load.counts, "client_bytes_sent": load.sent,
                   "service_bytes_received": load.received}
    return res


def run_pipe(a, tmp, sink_port, stats, duration, procs):
    if not a.tmgen:
        raise SystemExit("--mode pipe needs --tmgen")
    # ~a.rate flows/s of mean ~10 KiB: packets/s ~ rate * 20.
    pps = max(100.0, a.rate * 20)
    step_us = max(1, int(1e6 / pps))
    flows = int(a.rate * duration * 1.5) + 1000
    gen = subprocess.Popen(
        [a.tmgen, "-o", "-", "--flows", str(flows), "--size-min", "100",
         "--size-max", "20000", "--concurrency", "200", "--rst", "5",
         "--midstream", "1", "--step-us", str(step_us),
         "--start-time", str(int(time.time())), "--seed", str(a.seed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    procs.append(gen)
    tm = subprocess.Popen(
        [a.tapmirror, "replay", "-", "-p", "8080", "--to", ":%d" % sink_port,
         "--stats-json", stats, "-q"], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, preexec_fn=raise_nofile)
    procs.append(tm)
    t0 = time.monotonic()
    sampler = Sampler(tm.pid, a.interval, t0)
    sampler.th.start()
    # Pace the stream: ~pps packets per second, at ~110 bytes per packet
    # header plus the mean payload share.
    bps = pps * 600
    sent = 0
    try:
        while time.monotonic() - t0 < duration:
            chunk = gen.stdout.read(16384)
            if not chunk:
                break
            tm.stdin.write(chunk)
            tm.stdin.flush()
            sent += len(chunk)
            ahead = sent / bps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    except BrokenPipeError:
        pass
    sampler.ev.set()
    sampler.th.join()
    stop(gen)
    try:
        tm.stdin.close()
    except BrokenPipeError:
        pass
    rc = stop(tm, timeout=60)
    return {"samples": sampler.samples, "exit": rc,
            "load": {"stream_bytes": sent}}


if __name__ == "__main__":
    sys.exit(main())
