"""The README's first command on a machine with only the build packages.

A copy of the source tree (no build directory) is driven through its
Makefile as a user would, with:

- a pkg-config search path (PKG_CONFIG_LIBDIR) holding only the .pc files
  of the build packages (libuv, libpcap, cJSON, zlib, brotli and what they
  require; http_parser has none), so
  cmocka is invisible to the build;
- apt-get, sudo and brew replaced on PATH by scripts that record their
  arguments, so any call of the package manager is seen and harmless;
- on Debian, a dpkg database (DPKG_ADMINDIR) from which one build package
  has been removed, so a missing package is seen without uninstalling it.

It checks that `make` reports the missing package with `make deps` and
runs no package manager, that `make deps` installs it and says so, that
`make demo` configures, builds and runs the demo with the tests left
unconfigured, and that `make demo` and `make check`'s first step install
a missing package and say so.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77  # CTest's SKIP_RETURN_CODE

BUILD_MODULES = ("libuv", "libpcap", "libcjson", "zlib", "libbrotlidec")
HIDDEN_PACKAGE = "libcjson-dev"  # a Debian build package in scripts/deps.sh
PACKAGE_MANAGERS = ("apt-get", "sudo", "brew")

RECORDER = """#!/bin/sh
# Records a call of the package manager instead of making it.
echo "$(basename "$0") $*" >>"$TM_TEST_PM_LOG"
[ "$(basename "$0")" = sudo ] && exec "$@"
exit 0
"""


def pc_closure(modules):
    """The .pc files of modules and of everything they require."""
    files, todo, seen = set(), list(modules), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        res = subprocess.run(["pkg-config", "--variable=pcfiledir", mod],
                             capture_output=True, text=True)
        if res.returncode != 0:
            continue  # e.g. libpcap on macOS: CMake finds it without one
        files.add(os.path.join(res.stdout.strip(), mod + ".pc"))
        req = subprocess.run(["pkg-config", "--print-requires",
                              "--print-requires-private", mod],
                             capture_output=True, text=True, check=True)
        for line in req.stdout.splitlines():
            if line.strip():
                todo.append(re.split(r"[\s<>=]", line.strip())[0])
    return files


def dpkg_status_without(package, dest):
    """A copy of the dpkg database in which package is not installed."""
    admindir = os.environ.get("DPKG_ADMINDIR", "/var/lib/dpkg")
    with open(os.path.join(admindir, "status")) as f:
        stanzas = f.read().split("\n\n")
    kept = [s for s in stanzas
            if not s.startswith(f"Package: {package}\n")]
    assert len(kept) == len(stanzas) - 1, f"{package} is not installed"
    os.makedirs(os.path.join(dest, "updates"))
    with open(os.path.join(dest, "status"), "w") as f:
        f.write("\n\n".join(kept))


class FreshMachine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tapmirror-fresh-")
        cls.src = os.path.join(cls.tmp, "src")
        shutil.copytree(ROOT, cls.src, symlinks=True,
                        ignore=cls._ignore_build_output)

        cls.pcdir = os.path.join(cls.tmp, "pkgconfig")
        os.mkdir(cls.pcdir)
        for pc in pc_closure(BUILD_MODULES):
            os.symlink(pc, os.path.join(cls.pcdir, os.path.basename(pc)))

        stubs = os.path.join(cls.tmp, "stubs")
        os.mkdir(stubs)
        for name in PACKAGE_MANAGERS:
            path = os.path.join(stubs, name)
            with open(path, "w") as f:
                f.write(RECORDER)
            os.chmod(path, 0o755)
        cls.pm_log = os.path.join(cls.tmp, "package-manager.log")

        env = dict(os.environ)
        for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PRESET", "BUILD",
                    "PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR",
                    "CMAKE_PREFIX_PATH", "DPKG_ADMINDIR"):
            env.pop(var, None)
        env["PKG_CONFIG_LIBDIR"] = cls.pcdir
        env["PATH"] = stubs + os.pathsep + env["PATH"]
        env["TM_TEST_PM_LOG"] = cls.pm_log
        cls.env = env

    @staticmethod
    def _ignore_build_output(directory, names):
        if os.path.samefile(directory, ROOT):
            return [n for n in names if n.startswith("build") or n == ".git"]
        return [n for n in names if n == "__pycache__"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if os.path.exists(self.pm_log):
            os.unlink(self.pm_log)

    def make(self, *args, env=None, timeout=1200):
        return subprocess.run(["make", "--no-print-directory", *args],
                              cwd=self.src, env=env or self.env,
                              capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def package_manager_calls(self):
        if not os.path.exists(self.pm_log):
            return []
        with open(self.pm_log) as f:
            return f.read().splitlines()

    def test_cmocka_is_hidden(self):
        res = subprocess.run(["pkg-config", "--exists", "cmocka"],
                             env=self.env)
        self.assertNotEqual(res.returncode, 0,
                            "cmocka is visible through PKG_CONFIG_LIBDIR")
        # libpcap may have no .pc (macOS); CMake finds it without one.
        res = subprocess.run(["pkg-config", "--exists", "libuv", "libcjson"],
                             env=self.env)
        self.assertEqual(res.returncode, 0, "a build module is hidden")

    def _env_missing_a_package(self):
        if shutil.which("dpkg-query") is None:
            self.skipTest("no dpkg: a missing package cannot be simulated")
        admindir = os.path.join(self.tmp, f"dpkg-{self.id()}")
        dpkg_status_without(HIDDEN_PACKAGE, admindir)
        return dict(self.env, DPKG_ADMINDIR=admindir)

    def test_1_make_reports_a_missing_package_and_installs_nothing(self):
        res = self.make(env=self._env_missing_a_package(), timeout=120)
        self.assertNotEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn(f"tapmirror: missing packages: {HIDDEN_PACKAGE}; "
                      "run `make deps` to install them", res.stderr)
        self.assertEqual(self.package_manager_calls(), [])
        self.assertFalse(os.path.exists(os.path.join(self.src, "build")),
                         "make configured although a package is missing")

    def test_2_make_deps_installs_and_says_so(self):
        res = self.make("deps", env=self._env_missing_a_package(),
                        timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("tapmirror: installing missing packages with apt-get: "
                      f"{HIDDEN_PACKAGE}", res.stderr)
        self.assertIn(f"tapmirror: installed: {HIDDEN_PACKAGE}", res.stderr)
        installs = [c for c in self.package_manager_calls()
                    if c.startswith("apt-get install")]
        self.assertEqual(len(installs), 1, self.package_manager_calls())
        self.assertEqual(installs[0].split()[-1], HIDDEN_PACKAGE)

    def test_3_make_demo_without_the_test_packages(self):
        res = self.make("demo")
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out)
        self.assertIn("6 requests on 4 connections", res.stdout)
        # ...and the comparison finds the one answer the local build
        # changes on purpose.
        self.assertIn("compared 6 exchanges: 5 same, 1 differ", res.stdout)
        self.assertIn("GET /items/42: $.price: 12.4 -> 12.5", res.stdout)
        # Everything make demo needs is installed: no package manager.
        self.assertEqual(self.package_manager_calls(), [])
        builds = os.listdir(os.path.join(self.src, "build"))
        self.assertEqual(len(builds), 1, builds)
        build = os.path.join(self.src, "build", builds[0])
        self.assertTrue(os.access(os.path.join(build, "tapmirror"), os.X_OK))
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertIn("TAPMIRROR_TESTS:STRING=AUTO", cache)
        self.assertFalse(os.path.exists(os.path.join(build, "tests")),
                         "the tests were configured without cmocka")
        self.assertFalse(os.path.exists(os.path.join(build, "tools")))

        # `make` afterwards: up to date, still no package manager.
        res = self.make(timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.package_manager_calls(), [])

    def test_4_make_demo_and_check_install_what_is_missing(self):
        # The README's two commands install a missing package and say so,
        # then go on: make demo runs the demo (its build is the one
        # test_3 made), make check's first step is scripts/deps.sh check.
        env = self._env_missing_a_package()
        res = self.make("demo", env=env)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 0, out)
        self.assertIn("tapmirror: installing missing packages with apt-get: "
                      f"{HIDDEN_PACKAGE}", res.stderr)
        self.assertIn(f"tapmirror: installed: {HIDDEN_PACKAGE}", res.stderr)
        self.assertIn("6 requests on 4 connections", res.stdout)
        installs = [c for c in self.package_manager_calls()
                    if c.startswith("apt-get install")]
        self.assertEqual([c.split()[-1] for c in installs], [HIDDEN_PACKAGE])
        os.unlink(self.pm_log)
        res = subprocess.run([os.path.join(self.src, "scripts", "deps.sh"),
                              "check"], cwd=self.src, env=env,
                             capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # (other test packages this machine lacks may be installed too)
        self.assertRegex(res.stderr, rf"tapmirror: installed: (.* )?"
                                     rf"{re.escape(HIDDEN_PACKAGE)}\b")
        self.assertIn(HIDDEN_PACKAGE, " ".join(
            c for c in self.package_manager_calls()
            if c.startswith("apt-get install")))


if __name__ == "__main__":
    if shutil.which("pkg-config") is None or shutil.which("make") is None:
        print("SKIP: needs pkg-config and make")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
