#!/usr/bin/env python3
"""Stopping: Ctrl-C, SIGTERM and SIGHUP stop cleanly (exit 0, summary, whole
records); a second Ctrl-C quits at once; a closed output pipe ends the
run; SIGPIPE never kills."""
import os
import signal
import subprocess
import threading
import time
import unittest

import tmtest as t


class Signals(unittest.TestCase):
    def setUp(self):
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def paced(self, name="paced"):
        # About 6 s of capture time: a run still going when signalled.
        return t.gen(self.tmp, name, "--flows", 30, "--size", 5000,
                     "--step-us", 20000)

    def assert_whole_records(self, path):
        r = t.run(["summary", path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotIn(b"ends inside a record", r.stderr)

    def test_sigint_sigterm_and_sighup_stop_cleanly(self):
        # SIGHUP: the terminal closed or the SSH session was lost.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with self.subTest(sig=sig):
                cap, man = self.paced()
                sink = t.Sink(self.tmp)
                out = self.tmp("stopped.pcap")
                stats = self.tmp("stopped.json")
                p = t.start(["replay", cap, "-p", man["port"], "--to",
                             sink.to, "--pace", "realtime", "-o", out,
                             "--stats-json", stats])
                before = t.wait_stderr(p, "replaying")
                time.sleep(1.5)
                p.send_signal(sig)
                _, err = p.communicate(timeout=15 * t.SLOW)
                err = before + err.decode()
                self.assertEqual(p.returncode, 0, err)
                self.assertIn("stopping", err)
                self.assertIn("connections:", err)  # the summary
                sink.stop(grace=0.3)
                st = t.read_json(stats)
                self.assertGreater(st["flows"]["seen"], 0)
                self.assertLess(st["flows"]["seen"], 30)
                self.assertEqual(st["targets"][0]["flows_dropped"], 0)
                # Whatever was delivered is a prefix-complete copy: every
                # completed flow arrived whole.
                want = set(t.expected_streams(man))
                complete = [s for s in sink.streams(complete_only=True)
                            if s in want]
                self.assertEqual(len(complete), st["flows"]["completed"])
                self.assert_whole_records(out)

    def test_second_interrupt_quits_at_once(self):
        cap, man = self.paced()
        sink = t.Sink(self.tmp, "--mode", "noread")
        out = self.tmp("twice.pcap")
        p = t.start(["replay", cap, "-p", man["port"], "--to", sink.to,
                     "--pace", "realtime", "-o", out, "--drain-timeout",
                     "60s"])
        t.wait_stderr(p, "replaying")
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        t.wait_stderr(p, "interrupted")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10 * t.SLOW)
        self.assertLess(time.monotonic() - t0, 3 * t.SLOW)
        self.assertEqual(p.returncode, 130, err.decode())
        sink.stop()
        self.assert_whole_records(out)

    def test_interrupt_in_the_middle_of_a_record(self):
        cap, man = t.gen(self.tmp, "mid", "--flows", 5, "--size", 20000)
        data = t.read_bytes(cap)
        sink = t.Sink(self.tmp)
        out = self.tmp("midrec.pcap")
        p = t.start(["replay", "-", "-p", man["port"], "--to", sink.to, "-o",
                     out], stdin=subprocess.PIPE)
        half = len(data) // 2 + 3  # almost surely inside a record
        p.stdin.write(data[:half])
        p.stdin.flush()
        before = t.wait_stderr(p, "replaying").encode()
        time.sleep(0.7)
        p.send_signal(signal.SIGINT)
        # Standard input stays open: the signal alone ends the run.
        p.wait(timeout=15 * t.SLOW)
        err = before + p.stderr.read()
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertIn(b"interrupted: stopping", err)
        sink.stop()
        written = t.read_bytes(out)
        self.assertTrue(data.startswith(written))
        self.assert_whole_records(out)

    def test_output_reader_that_exits_early(self):
        cap, man = t.gen(self.tmp, "head", "--flows", 200, "--size", 20000)
        sink = t.Sink(self.tmp)
        p = t.start(["replay", cap, "-p", man["port"], "--to", sink.to,
                     "-o", "-", "--pace", "realtime"],
                    stdout=subprocess.PIPE)
        head = p.stdout.read(100)
        p.stdout.close()  # the reader goes away, like `| head -c 100`
        _, err = p.communicate(timeout=20 * t.SLOW)
        err = err.decode()
        self.assertEqual(len(head), 100)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("closed it", err)
        self.assertNotEqual(p.returncode, -signal.SIGPIPE)
        sink.stop()

    def test_status_line_only_on_a_terminal(self):
        import pty
        import select as sel
        cap, man = t.gen(self.tmp, "status", "--flows", 10, "--size", 2000,
                         "--step-us", 30000)
        span = (man["totals"]["packets"] - 1) * 0.03
        for quiet in (False, True):
            sink = t.Sink(self.tmp)
            master, slave = pty.openpty()
            args = ["replay", cap, "-p", man["port"], "--to", sink.to,
                    "--pace", "realtime"] + (["-q"] if quiet else [])
            p = t.start(args, stderr=slave, stdout=subprocess.DEVNULL)
            os.close(slave)
            out = b""
            t0 = time.monotonic()
            while True:
                r, _, _ = sel.select([master], [], [], 0.2)
                if r:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    out += chunk
                elif p.poll() is not None:
                    break
            p.wait(timeout=30)
            elapsed = time.monotonic() - t0
            os.close(master)
            sink.stop()
            redraws = out.count(b"\r\x1b[K") + out.count(b"\rtapmirror: ")
            lines = out.count(b"pkts")
            if quiet:
                self.assertEqual(lines, 0, out)
            else:
                self.assertGreaterEqual(lines, int(span * 4 * 0.5), out)
                self.assertLessEqual(lines, int(elapsed * 4) + 2, out)
        # Not a terminal: no status line at all.
        sink = t.Sink(self.tmp)
        r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to,
                   "--pace", "realtime"])
        sink.stop()
        self.assertNotIn(b"pkts", r.stderr)
        self.assertNotIn(b"\r", r.stderr)

    def test_shell_pipeline_into_head(self):
        cap, man = t.gen(self.tmp, "shell", "--flows", 100, "--size", 20000)
        sink = t.Sink(self.tmp)
        cmd = (f"{' '.join(t.WRAPPER)} {t.TAPMIRROR} replay {cap} "
               f"-p {man['port']} --to {sink.to} -o - --pace 10x | head -c 100"
               " | wc -c; echo \"status=${PIPESTATUS[0]}\"")
        r = subprocess.run(["bash", "-c", cmd], capture_output=True,
                           timeout=60 * t.SLOW)
        out = r.stdout.decode()
        self.assertIn("100", out)
        self.assertIn("status=0", out, r.stderr.decode())
        sink.stop()


if __name__ == "__main__":
    t.main()
