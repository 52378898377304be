#!/usr/bin/env python3
"""Never lose, never stall: targets that restart, stop reading, crawl or
reset; descriptors running out. Each checks the bytes every target
received, the statistics and the exit status."""
import os
import resource
import subprocess
import threading
import time
import unittest

import tmtest as t


def run_measured(args, stdin=None, input_bytes=None, timeout=120,
                 preexec=None):
    """Runs tapmirror and returns (returncode, stderr, peak RSS in KiB)."""
    cmd = t.WRAPPER + [t.TAPMIRROR] + [str(a) for a in args]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if input_bytes else stdin,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=preexec)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()),
                              daemon=True)
    reader.start()
    if input_bytes:
        try:
            p.stdin.write(input_bytes)
            p.stdin.close()
        except BrokenPipeError:
            pass
    deadline = time.monotonic() + timeout * t.SLOW
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            raise AssertionError(f"tapmirror {args} did not finish")
        time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    return p.returncode, b"".join(err).decode(errors="replace"), ru.ru_maxrss


class Faults(unittest.TestCase):
    def setUp(self):
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def test_target_restarted_within_retry_window(self):
        # Flows one after another, 100 ms apart; the first receiver takes
        # ten and exits, the second starts on the same port a second later.
        cap, man = t.gen(self.tmp, "restart", "--flows", 30, "--size", 3000,
                         "--step-us", 12500)
        first = t.Sink(self.tmp, expect=10)
        stats = self.tmp("restart.json")
        p = t.start(["replay", cap, "-p", man["port"], "--to", first.to,
                     "--pace", "realtime", "--stats-json", stats])
        first.wait(timeout=30)
        time.sleep(1.0)
        second = t.Sink(self.tmp, listen=first.address, expect=20)
        _, err = p.communicate(timeout=60 * t.SLOW)
        self.assertEqual(p.returncode, 0, err.decode())
        second.wait(timeout=30)
        got = sorted(first.streams() + second.streams())
        self.assertEqual(got, t.expected_streams(man))
        st = t.read_json(stats)["targets"][0]
        self.assertGreater(st["dial_failures"], 0)
        self.assertEqual(st["flows_dropped"], 0)

    def test_target_that_never_reads_costs_flows_not_the_capture(self):
        # Each local connection's kernel buffers hold several MB on
        # loopback; 12 MB flows overflow them and then the queues.
        cap, man = t.gen(self.tmp, "stuck", "--flows", 8, "--concurrency", 8,
                         "--size", 12000000)
        data = t.read_bytes(cap)
        sink = t.Sink(self.tmp, "--mode", "noread")
        out = self.tmp("stuck.pcap")
        stats = self.tmp("stuck.json")
        # Standard input is live: it must never wait for the target.
        t0 = time.monotonic()
        code, err, rss = run_measured(
            ["replay", "-", "-p", man["port"], "--to", sink.to, "-o", out,
             "--max-buffer", "16MiB", "--flow-buffer", "4MiB",
             "--stats-json", stats, "--drain-timeout", "1s"],
            input_bytes=data)
        self.assertEqual(code, 3, err)
        self.assertLess(time.monotonic() - t0, 30 * t.SLOW)
        self.assertEqual(t.read_bytes(out), data)
        st = t.read_json(stats)
        self.assertEqual(st["targets"][0]["flows_dropped"], 8)
        self.assertIn("were dropped before every byte was delivered", err)
        if t.MEASURE_MEMORY:
            # The 16 MiB budget plus the process itself, far below the
            # 96 MB of input.
            peak = st["process"]["peak_rss_bytes"]
            self.assertLess(peak, 48 << 20, f"peak RSS {peak} bytes")
        sink.stop()

    def test_stuck_target_with_a_file_hits_the_write_timeout(self):
        cap, man = t.gen(self.tmp, "stuckfile", "--flows", 4,
                         "--concurrency", 4, "--size", 16000000)
        sink = t.Sink(self.tmp, "--mode", "noread")
        stats = self.tmp("stuckfile.json")
        t0 = time.monotonic()
        code, err, _ = run_measured(
            ["replay", cap, "-p", man["port"], "--to", sink.to,
             "--write-timeout", "1s", "--stats-json", stats, "-q"])
        self.assertEqual(code, 3, err)
        self.assertLess(time.monotonic() - t0, 20 * t.SLOW)
        # -q keeps the warnings: the loss is said, the summary is not.
        self.assertIn("warning: 4 connections to", err)
        self.assertIn("were dropped before every byte was delivered", err)
        self.assertNotIn("connections: ", err)
        st = t.read_json(stats)["targets"][0]
        self.assertEqual(st["flows_dropped"], 4)
        self.assertEqual(st["write_failures"], 4)
        sink.stop()

    def test_slow_target_with_a_file_loses_nothing(self):
        cap, man = t.gen(self.tmp, "slow", "--flows", 6, "--concurrency", 6,
                         "--size", 300000)
        sink = t.Sink(self.tmp, "--mode", "slow", "2000000", expect=6)
        stats = self.tmp("slow.json")
        code, err, _ = run_measured(["replay", cap, "-p", man["port"], "--to",
                                     sink.to, "--stats-json", stats])
        self.assertEqual(code, 0, err)
        sink.wait()
        self.assertEqual(sink.streams(), t.expected_streams(man))

    def test_target_resetting_connections(self):
        cap, man = t.gen(self.tmp, "reset", "--flows", 60, "--concurrency", 10,
                         "--size", 200000)
        sink = t.Sink(self.tmp, "--mode", "reset", "30", "--seed", "4")
        stats = self.tmp("reset.json")
        code, err, _ = run_measured(["replay", cap, "-p", man["port"], "--to",
                                     sink.to, "--stats-json", stats])
        sink.stop(grace=0.5)
        st = t.read_json(stats)["targets"][0]
        self.assertIn(code, (0, 3), err)
        self.assertEqual(code == 3, st["flows_dropped"] > 0)
        # Connections the target did not reset arrived whole; the ones it
        # reset are counted as dropped.
        want = set(t.expected_streams(man))
        complete = sink.streams(complete_only=True)
        self.assertTrue(all(s in want for s in complete))
        self.assertEqual(len(complete) + st["flows_dropped"], 60)
        self.assertEqual(st["completed"] + st["flows_dropped"], 60)
        self.assertGreater(st["flows_dropped"], 5)

    def test_descriptors_run_out(self):
        cap, man = t.gen(self.tmp, "fds", "--flows", 3000, "--concurrency",
                         3000, "--size", 500)
        sink = t.Sink(self.tmp, expect=3000)
        stats = self.tmp("fds.json")

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

        code, err, _ = run_measured(["replay", cap, "-p", man["port"], "--to",
                                     sink.to, "--stats-json", stats],
                                    preexec=limit)
        self.assertEqual(code, 0, err)
        sink.wait(timeout=60)
        # A file can wait for descriptors: nothing is lost.
        self.assertEqual(sink.streams(), t.expected_streams(man))
        st = t.read_json(stats)["targets"][0]
        self.assertEqual(st["connections"], 3000)


    def test_output_on_a_full_disk(self):
        """The output file system fills up mid-run (a 256 KiB tmpfs): one
        clear error line, exit 1, and the file holds whole records, a
        byte-exact prefix of the input."""
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        mnt = self.tmp("small-disk")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k",
                            "tmpfs", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs: {r.stderr.strip()}")
        sink = t.Sink(self.tmp)
        try:
            cap, man = t.gen(self.tmp, "full", "--flows", 20, "--size",
                             50000, "--concurrency", 5)
            out = os.path.join(mnt, "out.pcap")
            stats = self.tmp("full.json")
            code, err, _ = run_measured(["replay", cap, "-p", man["port"],
                                         "--to", sink.to, "-o", out,
                                         "--stats-json", stats])
            self.assertEqual(code, 1, err)
            lines = [l for l in err.splitlines() if "No space" in l]
            self.assertEqual(lines, [f"tapmirror: writing {out}: "
                                     "No space left on device"], err)
            written = t.read_bytes(out)
            source = t.read_bytes(cap)
            self.assertGreater(len(written), 100 * 1024)
            self.assertLess(len(written), len(source))
            self.assertEqual(written, source[:len(written)])
            # Whole records: the record headers chain exactly to the end.
            off, records = 24, 0
            while off < len(written):
                caplen = int.from_bytes(written[off + 8:off + 12], "little")
                off += 16 + caplen
                records += 1
            self.assertEqual(off, len(written))
            st = t.read_json(stats)
            self.assertEqual(st["exit_code"], 1)
            self.assertEqual(st["output"]["packets"], records)
            self.assertEqual(st["output"]["bytes"], len(written))
            # What reached the output also reached the target.
            got = sum(c["bytes"] for c in sink.stop()["connections"])
            self.assertEqual(got, st["targets"][0]["bytes_delivered"])
        finally:
            if sink.proc.poll() is None:
                sink.proc.kill()
            subprocess.run(["umount", "-l", mnt], capture_output=True)

    def test_ephemeral_ports_run_out(self):
        """Thousands of short connections to one loopback port on a kernel
        that does not reuse TIME-WAIT ports: connect() runs out of ports,
        and tapmirror moves to other 127/8 source addresses instead of
        dropping connections. Runs in a network namespace of its own, with
        500 ephemeral ports."""
        if os.geteuid() != 0:
            self.skipTest("needs root to create a network namespace")
        ns = f"tmports{os.getpid()}"
        r = subprocess.run(["ip", "netns", "add", ns], capture_output=True)
        if r.returncode != 0:
            self.skipTest(f"cannot create a network namespace: {r.stderr}")
        try:
            def inns(*cmd):
                return ["ip", "netns", "exec", ns, *map(str, cmd)]
            subprocess.run(inns("ip", "link", "set", "lo", "up"), check=True)
            subprocess.run(inns("sysctl", "-qw", "net.ipv4.tcp_tw_reuse=0"),
                           check=True)
            subprocess.run(inns("sysctl", "-qw",
                                "net.ipv4.ip_local_port_range=40000 40499"),
                           check=True)
            cap, man = t.gen(self.tmp, "ports", "--flows", 2000, "--size",
                             600, "--response", 100, "--concurrency", 50)
            sink_man = self.tmp("ports-sink.json")
            sink = subprocess.Popen(
                inns(t.TMSINK, "--listen", "127.0.0.1:0", "--manifest",
                     sink_man, "--quiet", "--expect", 2000, "--timeout",
                     "60s"), stdout=subprocess.PIPE, text=True)
            addr = sink.stdout.readline().strip().split()[-1]
            stats = self.tmp("ports.json")
            r = subprocess.run(inns(*t.WRAPPER, t.TAPMIRROR, "replay", cap,
                                    "-p", man["port"], "--to", addr,
                                    "--stats-json", stats, "-q"),
                               capture_output=True, timeout=120 * t.SLOW)
            sink.wait(timeout=60)
            sink.stdout.close()
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            st = t.read_json(stats)["targets"][0]
            self.assertEqual(st["connections"], 2000)
            self.assertEqual(st["flows_dropped"], 0)
            got = sorted((c["bytes"], c["fnv64"])
                         for c in t.read_json(sink_man)["connections"])
            self.assertEqual(got, t.expected_streams(man))
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    t.main()
