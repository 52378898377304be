#!/usr/bin/env python3
"""Command line, exit statuses and one-line error messages."""
import os
import re
import socket
import struct
import subprocess
import time
import unittest

import tmtest as t


def pcap_header(linktype=1, snaplen=262144):
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = t.TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def check_usage(self, args, pattern):
        r = t.run(args)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, f"{args}: {err}")
        lines = err.strip().splitlines()
        self.assertTrue(lines[0].startswith("tapmirror: "), err)
        self.assertRegex(lines[0], pattern)
        self.assertIn("--help", lines[-1])
        self.assertEqual(r.stdout, b"")

    def check_error(self, args, pattern, code=1, **kw):
        r = t.run(args, **kw)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, code, f"{args}: {err}")
        errors = [l for l in err.splitlines()
                  if l.startswith("tapmirror: ") and "warning" not in l]
        self.assertTrue(errors, err)
        self.assertRegex(err, pattern)
        return r

    def test_help_and_version(self):
        r = t.run(["--help"])
        self.assertEqual(r.returncode, 0)
        text = r.stdout.decode()
        for cmd in ("replay", "capture", "summary", "mirror"):
            self.assertIn(f"tapmirror {cmd}", text)
        self.assertIn("(default: 200ms)", text)
        self.assertIn("Exit status", text)
        for cmd in ("replay", "capture", "summary"):
            r = t.run([cmd, "--help"])
            self.assertEqual(r.returncode, 0)
            self.assertIn(f"Usage: tapmirror {cmd}", r.stdout.decode())
        r = t.run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^tapmirror \d+\.\d+\.\d+")

    def test_usage_errors(self):
        cap = self.tmp("x.pcap")
        t.write_bytes(cap, pcap_header())
        self.check_usage([], "missing command")
        self.check_usage(["frobnicate"], "unknown command 'frobnicate'")
        self.check_usage(["replay", cap, "--to", ":9"], "needs -p/--port")
        self.check_usage(["replay", cap, "-p", "80"], "needs at least one --to")
        self.check_usage(["replay", "-p", "80", "--to", ":9"],
                         "needs a capture FILE")
        for bad in ("0", "65536", "-1", "80x", "", "0x50"):
            self.check_usage(["replay", cap, "-p", bad, "--to", ":9"],
                             "invalid --port")
        self.check_usage(["replay", cap, "-p", "80", "--to", "nowhere"],
                         "invalid --to 'nowhere'")
        self.check_usage(["replay", cap, "-p", "80", "--to", "::1:80"],
                         "brackets")
        self.check_usage(["replay", cap, "-p", "80", "--to", ":9",
                          "--gap-timeout", "10"], "invalid --gap-timeout")
        self.check_usage(["replay", cap, "-p", "80", "--to", ":9",
                          "--max-buffer", "lots"], "invalid --max-buffer")
        self.check_usage(["replay", cap, "-p", "80", "--to", ":9",
                          "--bogus"], "unknown option '--bogus'")
        self.check_usage(["capture", "-p", "80", "--pace", "2x", "-i", "lo"],
                         "unknown option '--pace'")
        self.check_usage(["capture", "-p", "80"], "needs -i/--interface")
        self.check_usage(["replay", cap, "-p", "80", "--to", ":9", "-f",
                          "tcp port"], "invalid --filter")
        self.check_usage(["mirror", "Bad_Name", "-p", "80"],
                         "invalid name 'Bad_Name'")
        self.check_usage(["mirror", "-p", "80", "--", "-evil"],
                         "invalid name '-evil'")
        self.check_usage(["mirror", "-Bad", "-p", "80"],
                         "unknown option '-B' for mirror")

    def test_unreachable_target_fails_before_capturing(self):
        port = t.free_port()
        cap, man = t.gen(self.tmp, "u", "--flows", 2)
        out = self.tmp("never.pcap")
        r = self.check_error(["replay", cap, "-p", man["port"], "--to",
                              f":{port}", "-o", out],
                             rf"cannot reach --to :{port}: 127\.0\.0\.1:{port}:"
                             r" connection refused")
        self.assertFalse(os.path.exists(out))
        self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1)

    def test_missing_and_bad_inputs(self):
        sink = t.Sink(self.tmp)
        try:
            to = sink.to
            self.check_error(["replay", self.tmp("missing.pcap"), "-p", "80",
                              "--to", to], r"cannot open .*missing\.pcap: No "
                                            r"such file")
            empty = self.tmp("empty.pcap")
            t.write_bytes(empty, b"")
            self.check_error(["summary", empty], "input is empty: not a "
                                                 "capture")
            self.check_error(["replay", empty, "-p", "80", "--to", to],
                             "input is empty: not a capture")
            text = self.tmp("text.pcap")
            t.write_bytes(text, ("error: you must be logged in\n").encode())
            self.check_error(["replay", text, "-p", "80", "--to", to],
                             r'not a pcap or pcapng capture: it starts with '
                             r'text "error: you must be logged in"')
            usb = self.tmp("usb.pcap")
            t.write_bytes(usb, pcap_header(linktype=189))
            self.check_error(["replay", usb, "-p", "80", "--to", to],
                             r"link type .*\(189\) is not supported")
            huge = self.tmp("huge.pcap")
            t.write_bytes(huge, pcap_header() +
                          struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 60))
            self.check_error(["replay", huge, "-p", "80", "--to", to],
                             r"record length 4294967295 exceeds")
            d = self.tmp("adir")
            os.mkdir(d)
            self.check_error(["replay", d, "-p", "80", "--to", to],
                             "is a directory")
        finally:
            sink.stop()

    def test_truncated_last_record_is_a_warning(self):
        cap, man = t.gen(self.tmp, "trunc", "--flows", 5, "--size", 3000)
        data = t.read_bytes(cap)
        cut = self.tmp("cut.pcap")
        t.write_bytes(cut, data[:-7])
        out = self.tmp("cut-out.pcap")
        sink = t.Sink(self.tmp)
        r = t.run(["replay", cut, "-p", man["port"], "--to", sink.to, "-o",
                   out])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("warning:", err)
        self.assertIn("ends inside a record", err)
        sink.stop(grace=0.5)
        # Every flow but possibly the last one arrives complete.
        got = set(sink.streams())
        want = t.expected_streams(man)
        self.assertGreaterEqual(len(got & set(want)), len(want) - 1)
        # The output holds whole records only: the input minus the cut one.
        outdata = t.read_bytes(out)
        self.assertTrue(data.startswith(outdata))
        self.assertLess(len(data) - len(outdata), 2000)
        r = t.run(["summary", out])
        self.assertEqual(r.returncode, 0)
        self.assertNotIn(b"warning", r.stderr)

    def test_output_file_safety(self):
        cap, man = t.gen(self.tmp, "safe", "--flows", 2)
        sink = t.Sink(self.tmp)
        try:
            # An existing file is replaced and left private.
            out = self.tmp("existing.pcap")
            t.write_bytes(out, ("old contents" * 1000).encode())
            os.chmod(out, 0o644)
            r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to, "-o",
                       out])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
            self.assertEqual(t.read_bytes(out), t.read_bytes(cap))
            # A symlink is never written through.
            victim = self.tmp("victim")
            t.write_bytes(victim, ("precious").encode())
            link = self.tmp("link.pcap")
            os.symlink(victim, link)
            self.check_error(["replay", cap, "-p", man["port"], "--to", sink.to,
                              "-o", link], "symbolic link")
            self.assertEqual(t.read_text(victim), "precious")
            # Missing directories are created, privately.
            nested = self.tmp("a/b/c.pcap")
            r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to, "-o",
                       nested])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(os.stat(self.tmp("a")).st_mode & 0o777, 0o700)
            # A run that leaves no capture leaves no new directories: not
            # when the input is no capture, not when the path cannot be
            # opened. Directories that were there stay.
            bad = self.tmp("bad.pcap")
            t.write_bytes(bad, b"not a capture at all, only text" * 4)
            for out, err in ((self.tmp("n1/n2/c.pcap"), "not a pcap"),
                             (self.tmp("a/n3/n4/c.pcap"), "not a pcap"),
                             (self.tmp("n5/n6/"), "Is a directory")):
                with self.subTest(out=out):
                    self.check_error(["replay", bad, "-p", man["port"], "--to",
                                      sink.to, "-o", out], err)
            self.assertEqual(sorted(os.listdir(self.tmp("a"))), ["b"])
            for gone in ("n1", "a/n3", "n5"):
                self.assertFalse(os.path.exists(self.tmp(gone)), gone)
        finally:
            sink.stop()

    def test_summary(self):
        cap, man = t.gen(self.tmp, "sum", "--flows", 12, "--link", "sll2",
                         "--response", 300)
        r = t.run(["summary", cap, "--flows", "5"])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = r.stdout.decode()
        self.assertIn("LINUX_SLL2", out)
        self.assertIn(f"packets:     {man['totals']['packets']} ", out)
        self.assertIn("connections: 12", out)
        self.assertIn("and 7 smaller connections", out)
        r = t.run(["summary", cap, "--json", "--flows", "0", "-p",
                   man["port"]])
        import json
        doc = json.loads(r.stdout)
        self.assertEqual(doc["connections"], 12)
        self.assertEqual(doc["client_bytes"], man["totals"]["bytes"])
        got = sorted(f["client_bytes"] for f in doc["flows"])
        self.assertEqual(got, sorted(f["bytes"] for f in man["flows"]))
        self.assertTrue(all(f["server_bytes"] == 300 for f in doc["flows"]))
        # Exact nanoseconds: a packet every 10 us from 1700000000 s.
        self.assertEqual(doc["first_ns"], 1700000000 * 10**9)
        self.assertEqual(doc["last_ns"] - doc["first_ns"],
                         (man["totals"]["packets"] - 1) * 10000)
        self.assertIsInstance(doc["last_ns"], int)
        # From standard input too.
        with open(cap, "rb") as f:
            r = t.run(["summary", "-"], stdin=f)
        self.assertEqual(r.returncode, 0)
        self.assertIn("connections: 12", r.stdout.decode())

    def test_stats_json_unwritable(self):
        cap, man = t.gen(self.tmp, "sj", "--flows", 1)
        sink = t.Sink(self.tmp)
        try:
            self.check_error(["replay", cap, "-p", man["port"], "--to",
                              sink.to, "--stats-json",
                              self.tmp("no/such/dir/s.json")],
                             "cannot write --stats-json")
        finally:
            sink.stop()

    def test_wrong_port_gets_a_hint(self):
        cap, man = t.gen(self.tmp, "wp", "--flows", 2)
        wrong = int(man["port"]) + 1
        sink = t.Sink(self.tmp)
        try:
            r = t.run(["replay", cap, "-p", wrong, "--to", sink.to, "-q"])
        finally:
            sink.stop()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn(f"went to or came from port {wrong};", err)
        self.assertIn("tapmirror summary", err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_stats_json_of_a_run_that_could_not_start(self):
        # A stats file from an earlier run must not pass for this one's.
        cap, man = t.gen(self.tmp, "sjf", "--flows", 1)
        stats = self.tmp("sjf.json")
        with open(stats, "w") as fp:
            fp.write('{"exit_code": 0}\n')
        r = t.run(["replay", cap, "-p", man["port"], "--to",
                   f"127.0.0.1:{t.free_port()}", "--stats-json", stats])
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        doc = t.read_json(stats)
        self.assertEqual(doc["exit_code"], 1)
        self.assertIn("cannot reach --to", doc["error"])
        # A usage error too.
        r = t.run(["replay", cap, "-p", man["port"], "--to", "127.0.0.1:9",
                   "--stats-json", stats, "--idle-timeout", "bogus"])
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        doc = t.read_json(stats)
        self.assertEqual(doc["exit_code"], 2)
        self.assertIn("--idle-timeout", doc["error"])

    def test_character_device_input(self):
        # /dev/null cannot be watched by epoll; it is read like a file.
        for args, stdin in ((["/dev/null"], None), (["-"], "/dev/null")):
            with self.subTest(args=args):
                sink = t.Sink(self.tmp)
                try:
                    if stdin:
                        with open(stdin, "rb") as f:
                            r = t.run(["replay", *args, "-p", 80, "--to",
                                       sink.to], stdin=f)
                    else:
                        r = t.run(["replay", *args, "-p", 80, "--to",
                                   sink.to])
                finally:
                    sink.stop()
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 1, err)
                self.assertIn("input is empty: not a capture", err)

    def test_output_that_is_the_input_under_another_name(self):
        cap, man = t.gen(self.tmp, "hl", "--flows", 2)
        link = self.tmp("hl-link.pcap")
        os.link(cap, link)
        before = t.read_bytes(cap)
        r = t.run(["replay", cap, "-p", man["port"], "--to", "127.0.0.1:9",
                   "-o", link])
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        self.assertIn("is the input file", r.stderr.decode())
        self.assertEqual(t.read_bytes(cap), before)

    def test_stats_json_never_replaces_a_capture(self):
        # --stats-json naming the input or the output would replace a
        # capture with a line of JSON, even after a usage error.
        cap, man = t.gen(self.tmp, "sjc", "--flows", 2)
        link = self.tmp("sjc-link.pcap")
        os.link(cap, link)
        out = self.tmp("sjc-out.pcap")
        with open(out, "wb") as fp:
            fp.write(b"an earlier capture")
        before = t.read_bytes(cap)
        port = man["port"]
        cases = [
            (["replay", cap, "-p", port, "--stats-json", cap], None,
             "needs at least one --to"),           # a usage error
            (["replay", cap, "-p", port, "--to", "127.0.0.1:9",
              "--stats-json", link], None, f"--stats-json {link} is the input file"),
            (["replay", "-", "-p", port, "--to", "127.0.0.1:9",
              "--stats-json", link], cap, f"--stats-json {link} is the input file"),
            (["replay", cap, "-p", port, "--to", "127.0.0.1:9", "-o", out,
              "--stats-json", out], None, f"--stats-json {out} is the -o/--output file"),
        ]
        for args, stdin, message in cases:
            with self.subTest(args=args):
                if stdin:
                    with open(stdin, "rb") as f:
                        r = t.run(args, stdin=f)
                else:
                    r = t.run(args)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, err)
                self.assertIn(message, err)
                self.assertEqual(t.read_bytes(cap), before)
                self.assertEqual(t.read_bytes(out), b"an earlier capture")
        # A device may be named twice: nothing is replaced.
        r = t.run(["replay", cap, "-p", port, "--to", "127.0.0.1:9", "-o", "/dev/null",
                   "--stats-json", "/dev/null"])
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertIn("cannot reach --to", r.stderr.decode())

    def test_stats_json_never_names_the_output_another_way(self):
        # The output may not exist yet when the run starts: two spellings
        # of one name are compared canonically, and a symbolic link at
        # --stats-json, even a dangling one, is never followed.
        cap, man = t.gen(self.tmp, "sjn", "--flows", 2)
        os.mkdir(self.tmp("d"))
        sink = t.Sink(self.tmp)

        def plain(out):
            return "./" + os.path.basename(out)

        def dotdot(out):
            return os.path.join(self.tmp("d"), "..", os.path.basename(out))

        def symlink(out):
            os.symlink(out, out + ".link")
            return out + ".link"

        def hard_link(out):
            os.link(out, out + ".hard")
            return out + ".hard"

        # (spelling, the output exists before the run, the message)
        cases = [(plain, False, "is the -o/--output file"),
                 (plain, True, "is the -o/--output file"),
                 (dotdot, False, "is the -o/--output file"),
                 (symlink, True, "is a symbolic link"),
                 (symlink, False, "is a symbolic link"),   # dangling
                 (hard_link, True, "is the -o/--output file")]
        try:
            for n, (spell, exists, message) in enumerate(cases):
                with self.subTest(spelling=spell.__name__, exists=exists):
                    out = self.tmp(f"out{n}.pcap")
                    if exists:
                        t.write_bytes(out, b"an earlier capture")
                    stats = spell(out)
                    r = t.run(["replay", cap, "-p", man["port"], "--to",
                               sink.to, "-o", os.path.basename(out),
                               "--stats-json", stats], cwd=self.tmp.path)
                    err = r.stderr.decode()
                    self.assertEqual(r.returncode, 2, err)
                    self.assertIn(f"--stats-json {stats}", err)
                    self.assertIn(message, err)
                    if exists:
                        self.assertEqual(t.read_bytes(out),
                                         b"an earlier capture")
                    else:
                        self.assertFalse(os.path.lexists(out), err)
        finally:
            sink.stop()

    def test_stats_json_file_safety(self):
        cap, man = t.gen(self.tmp, "sjs", "--flows", 2)
        port = man["port"]
        sink = t.Sink(self.tmp)
        os.mkdir(self.tmp("s"))
        try:
            # An existing file, 0644 and with a second name, is replaced
            # by a new private file: the other name keeps the old bytes,
            # and no temporary file is left beside it.
            stats = self.tmp("s/stats.json")
            t.write_bytes(stats, b"old stats")
            os.chmod(stats, 0o644)
            os.link(stats, self.tmp("s/other"))
            r = t.run(["replay", cap, "-p", port, "--to", sink.to,
                       "--stats-json", stats])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(os.stat(stats).st_mode & 0o777, 0o600)
            self.assertEqual(t.read_json(stats)["exit_code"], 0)
            self.assertEqual(t.read_bytes(self.tmp("s/other")), b"old stats")
            self.assertEqual(sorted(os.listdir(self.tmp("s"))),
                             ["other", "stats.json"])
            # A new one is private too, whatever the umask.
            fresh = self.tmp("s/fresh.json")
            r = t.run(["replay", cap, "-p", port, "--to", sink.to,
                       "--stats-json", fresh])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(os.stat(fresh).st_mode & 0o777, 0o600)
            # A symbolic link to another file, or to none, is refused, for
            # a run and for the error line of a usage error alike.
            victim = self.tmp("victim")
            t.write_bytes(victim, b"precious")
            os.symlink(victim, self.tmp("to-victim.json"))
            os.symlink(self.tmp("nowhere"), self.tmp("dangling.json"))
            for link in (self.tmp("to-victim.json"),
                         self.tmp("dangling.json")):
                for extra, code in (([], 2), (["--idle-timeout", "x"], 2)):
                    with self.subTest(link=link, extra=extra):
                        r = t.run(["replay", cap, "-p", port, "--to", sink.to,
                                   "--stats-json", link, *extra])
                        err = r.stderr.decode()
                        self.assertEqual(r.returncode, code, err)
                        if not extra:
                            self.assertIn("it is a symbolic link", err)
                        self.assertEqual(t.read_bytes(victim), b"precious")
                        self.assertFalse(os.path.lexists(self.tmp("nowhere")))
            # A FIFO, even one with a reader, is not a stats file.
            fifo = self.tmp("stats.fifo")
            os.mkfifo(fifo)
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            try:
                self.check_error(["replay", cap, "-p", port, "--to", sink.to,
                                  "--stats-json", fifo],
                                 "it is not a regular file", code=2)
                self.assertEqual(os.read(reader, 4096), b"")
            finally:
                os.close(reader)
            # The null device stays usable for both.
            r = t.run(["replay", cap, "-p", port, "--to", sink.to, "-o",
                       "/dev/null", "--stats-json", "/dev/null"])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        finally:
            sink.stop()

    def test_stats_json_checked_again_at_the_write(self):
        # Names can change while a run lasts: what is at the path when the
        # stats are written is compared again, not followed, and refused.
        cap, man = t.gen(self.tmp, "sjw", "--flows", 20, "--size", 1000,
                         "--step-us", 5000)
        sink = t.Sink(self.tmp)
        try:
            for n, plant in enumerate((os.link, os.symlink)):
                with self.subTest(plant=plant.__name__):
                    out = self.tmp(f"w{n}.pcap")
                    stats = self.tmp(f"w{n}.json")
                    p = t.start(["replay", cap, "-p", man["port"], "--to",
                                 sink.to, "--pace", "realtime", "-o", out,
                                 "--stats-json", stats])
                    deadline = time.monotonic() + 10 * t.SLOW
                    while not os.path.exists(out):
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.01)
                    plant(out, stats)
                    _, err = p.communicate(timeout=60 * t.SLOW)
                    err = err.decode()
                    self.assertEqual(p.returncode, 1, err)
                    self.assertRegex(err, f"--stats-json {re.escape(stats)}"
                                     "(: it is a symbolic link| is the "
                                     "-o/--output file)")
                    self.assertEqual(t.read_bytes(out), t.read_bytes(cap))
        finally:
            sink.stop()

    def test_output_is_a_file_or_the_null_device(self):
        cap, man = t.gen(self.tmp, "ok", "--flows", 2)
        port = man["port"]
        sink = t.Sink(self.tmp)
        try:
            # A FIFO planted at the path would hand the capture to its
            # reader; -o - is the way to write to a pipe.
            fifo = self.tmp("out.fifo")
            os.mkfifo(fifo)
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            try:
                self.check_error(["replay", cap, "-p", port, "--to", sink.to,
                                  "-o", fifo], "it is a FIFO")
                self.assertEqual(os.read(reader, 4096), b"")
            finally:
                os.close(reader)
            # A device other than the null device.
            self.check_error(["replay", cap, "-p", port, "--to", sink.to,
                              "-o", "/dev/zero"], "it is a device")
            r = t.run(["replay", cap, "-p", port, "--to", sink.to, "-o",
                       "/dev/null"])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        finally:
            sink.stop()

    def test_output_mode_changes_when_writing_starts(self):
        # An existing file keeps its mode and contents until the first
        # record is written: a run that fails before that changes nothing.
        cap, man = t.gen(self.tmp, "om", "--flows", 2)
        port = man["port"]
        sink = t.Sink(self.tmp)
        try:
            out = self.tmp("kept.pcap")
            t.write_bytes(out, b"an earlier capture")
            os.chmod(out, 0o644)
            bad = self.tmp("bad.pcap")
            t.write_bytes(bad, b"not a capture at all, only text" * 4)
            self.check_error(["replay", bad, "-p", port, "--to", sink.to,
                              "-o", out], "not a pcap")
            self.assertEqual(os.stat(out).st_mode & 0o777, 0o644)
            self.assertEqual(t.read_bytes(out), b"an earlier capture")
            # A run that writes makes it private.
            r = t.run(["replay", cap, "-p", port, "--to", sink.to, "-o", out])
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
            self.assertEqual(t.read_bytes(out), t.read_bytes(cap))
        finally:
            sink.stop()

    def test_docs_list_every_option(self):
        # In the spirit of curl's manpage-scan: the options and defaults of
        # --help (which prints the option table) against those of the man
        # page and README.md, both ways.
        code = help_options(t.run(["--help"]).stdout.decode())
        self.assertGreaterEqual(len(code), 30)
        man = t.read_text(os.path.join(t.ROOT, "docs", "tapmirror.1"))
        documented = man_options(man)
        self.assertEqual(sorted(set(code) - set(documented)), [],
                         "options without an entry in the man page")
        self.assertEqual(sorted(set(documented) - set(code)), [],
                         "man page entries of options the code lacks")
        mentioned = set(re.findall(r"--([a-z][a-z0-9-]*)",
                                   man.replace("\\-", "-")))
        self.assertEqual(sorted(mentioned - set(code)), [],
                         "the man page mentions options the code lacks")
        for name, text in documented.items():
            self.assertNotRegex(text, r"\(default(?!: )",
                                f"--{name}: write a default as (default: X)")
            # "(default: X)", or "(default: X; a remark)".
            m = re.search(r"\(default: ([^)]*)\)", text)
            said, want = (m.group(1) if m else None), code[name]
            self.assertTrue(said == want or (said and want and
                                             said.startswith(want + "; ")),
                            f"--{name}: the man page says (default: {said}), "
                            f"--help (default: {want})")

        readme = t.read_text(os.path.join(t.ROOT, "README.md"))
        rows = readme_options(readme)
        self.assertEqual(sorted(set(code) - set(rows)), [],
                         "options missing from README.md's table")
        self.assertEqual(sorted(set(rows) - set(code)), [],
                         "README.md's table has options the code lacks")
        for name, cell in rows.items():
            value = cell.strip("`")
            if code[name] is not None and " " not in code[name]:
                # A default one could write as a value: the same text.
                self.assertIn(cell, (code[name], f"`{code[name]}`"),
                              f"--{name}: README.md's default")
            elif re.fullmatch(r"`[^`]+`", cell):
                self.fail(f"--{name}: README.md gives the default {value}, "
                          f"--help {code[name]}")


    def test_man_page_names_every_stats_json_field(self):
        # A field added to --stats-json without a line under STATISTICS
        # fails here; fields are named by their path, "targets[].flows".
        cap, man = t.gen(self.tmp, "sjd", "--flows", 3)
        stats, out = self.tmp("sjd.json"), self.tmp("sjd-out.pcap")
        sink = t.Sink(self.tmp)
        try:
            r = t.run(["replay", cap, "-p", man["port"], "--to", sink.to,
                       "-o", out, "--stats-json", stats])
        finally:
            sink.stop()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        docs = [t.read_json(stats)]
        # The summary says what its byte counts hold.
        self.assertIn(" of captured packet data) from ", err)
        self.assertIn(", file and record headers included) to ", err)
        self.assertEqual(docs[0]["output"]["bytes"], os.path.getsize(out))
        r = t.run(["replay", cap, "-p", man["port"], "--to",
                   f"127.0.0.1:{t.free_port()}", "--stats-json", stats])
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        docs.append(t.read_json(stats))
        page = t.read_text(os.path.join(t.ROOT, "docs", "tapmirror.1"))
        section = deroff(page.split("\n.SH STATISTICS\n", 1)[1]
                         .split("\n.SH ", 1)[0])
        named = set(section.split())
        paths = set()
        for doc in docs:
            json_paths(doc, "", paths)
        self.assertIn("targets[].bytes_delivered", paths)
        self.assertEqual(sorted(paths - named), [],
                         "--stats-json fields the man page does not list")


def help_options(text):
    """{name: default or None} for each option heading of --help."""
    entries = []
    for line in text.splitlines():
        m = re.match(r"  (?:-\w, )?--([a-z][a-z0-9-]*)"
                     r"|      --([a-z][a-z0-9-]*)", line)
        if m:
            entries.append([m.group(1) or m.group(2), line])
        elif entries and line.startswith(" " * 30):
            entries[-1][1] += " " + line.strip()
        else:
            entries.append(["", ""])  # the end of an option's text
    opts = {}
    for name, body in entries:
        if name:
            m = re.search(r"\(default: (.*)\)$", " ".join(body.split()))
            opts[name] = opts.get(name) or (m.group(1) if m else None)
    return opts


def json_paths(value, prefix, paths):
    """Adds the path of each field of `value` that holds no fields of its
    own ("a.b", "a[].c") to paths: a list of plain values is one field."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            if not (isinstance(item, dict) or
                    (isinstance(item, list) and item and
                     isinstance(item[0], dict))):
                paths.add(path)
            json_paths(item, path, paths)
    elif isinstance(value, list):
        for item in value:
            json_paths(item, prefix + "[]", paths)

def deroff(text):
    """The words of a piece of man page, without its font macros."""
    words = []
    for line in text.splitlines():
        m = re.match(r"\.(B|I|BR|BI|IB|IR|RB|RI)\s+(.*)", line)
        if m:
            args = [a or b
                    for a, b in re.findall(r'"([^"]*)"|(\S+)', m.group(2))]
            line = (" " if len(m.group(1)) == 1 else "").join(args)
        elif line.startswith("."):
            continue
        words.append(line)
    text = " ".join(words)
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-")
    text = text.replace("\\(en", "-").replace("\\ ", " ")
    return " ".join(text.split())


def man_options(man):
    """{name: text of its entry} for each .TP entry of OPTIONS."""
    section = man.split("\n.SH OPTIONS", 1)[1].split("\n.SH ", 1)[0]
    opts = {}
    for entry in section.split("\n.TP\n")[1:]:
        heading, _, body = entry.partition("\n")
        body = body.split("\n.PP\n")[0]
        for name in re.findall(r"--([a-z][a-z0-9-]*)", deroff(heading)):
            opts[name] = deroff(body)
    return opts


def readme_options(readme):
    """{name: default cell} for each row of README.md's option table."""
    section = readme.split("\n### Options\n", 1)[1].strip().split("\n\n")[0]
    opts = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"--([a-z][a-z0-9-]*)", cells[0]):
                opts[name] = cells[1]
    return opts


if __name__ == "__main__":
    t.main()
