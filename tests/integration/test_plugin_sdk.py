"""Third-party plugins for real (plugins/README.md): the installed layout,
pkg-config, the template device built out of the tree with its fuzz harness
(replay, libFuzzer and AFL++ from the one source), the guide's steps run
literally, `nimbus --device help`, and a guest that reads the out-of-tree
template device through /dev/hwrng.

The install source is the build folder of the nimbus under test
($NIMBUS_BIN's folder, build/ by default): what CI built is what is
installed.
"""

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from framework.paths import REPO_ROOT, nimbus_bin

TEMPLATE = REPO_ROOT / "plugins" / "virtio_template"
GUIDE = REPO_ROOT / "plugins" / "README.md"
CORPUS = REPO_ROOT / "fuzz" / "corpus" / "fuzz_virtio_template"
HEADERS = ("plugin_abi.h", "plugin_util.h", "virtio_util.h", "fuzz_virtio.h")
BOOT_TIMEOUT = 180  # nested TCG
M64 = (1 << 64) - 1


def in_tree_plugins():
    """Every plugin folder the build installs (testbug never is)."""
    return sorted(p.name for p in (REPO_ROOT / "plugins").iterdir()
                  if (p / "CMakeLists.txt").is_file() and p.name != "testbug")


def run(argv, **kw):
    """Run, and fail the test with the command's output when it fails."""
    kw.setdefault("timeout", 600)
    res = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, argv))}: status {res.returncode}\n{res.stdout}"
    return res.stdout


def install(prefix: Path) -> Path:
    run(["cmake", "--install", nimbus_bin().parent, "--prefix", prefix])
    return prefix


def pc_env(prefix: Path):
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = str(prefix / "lib" / "pkgconfig")
    env.pop("PKG_CONFIG_LIBDIR", None)
    return env


def template_stream(seed: int, nbytes: int) -> bytes:
    """The template's data, recomputed from plugins/virtio_template/README.md:
    byte i is byte i % 8 (little-endian) of splitmix64 output i // 8."""
    out = bytearray()
    k = 0
    while len(out) < nbytes:
        z = (seed + (k + 1) * 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        out += z.to_bytes(8, "little")
        k += 1
    return bytes(out[:nbytes])


@dataclass
class OutOfTree:
    prefix: Path
    build: Path

    @property
    def plugin(self) -> Path:
        return self.build / "virtio_template.so"


def build_out_of_tree(work: Path, cmake_args=(), env_extra=None) -> OutOfTree:
    """Install nimbus into work/prefix, copy the template to work/src (away
    from the tree, so nothing but pkg-config can find nimbus' headers) and
    build it there."""
    prefix = install(work / "prefix")
    src = work / "src"
    shutil.copytree(TEMPLATE, src)
    env = pc_env(prefix)
    env.update(env_extra or {})
    build = work / "build"
    run(["cmake", "-S", src, "-B", build, *cmake_args], env=env)
    run(["cmake", "--build", build], env=env)
    return OutOfTree(prefix, build)


# --- host side ------------------------------------------------------------------


@pytest.mark.host
def test_install_layout(tmp_path):
    prefix = install(tmp_path / "prefix")
    for exe in ("nimbus", "nimbus-remote"):
        assert os.access(prefix / "bin" / exe, os.X_OK), f"bin/{exe} not installed"
    plugdir = prefix / "lib" / "nimbus" / "plugins"
    assert sorted(p.stem for p in plugdir.glob("*.so")) == in_tree_plugins()
    for h in HEADERS:
        assert (prefix / "include" / "nimbus" / h).is_file(), f"include/nimbus/{h} missing"
    for pc in ("nimbus-plugin.pc", "nimbus-plugin-fuzz.pc"):
        assert (prefix / "lib" / "pkgconfig" / pc).is_file(), f"lib/pkgconfig/{pc} missing"
    for lib in ("libnimbus-fuzz-virtio.a", "libnimbus-fuzz-replay.a"):
        assert (prefix / "lib" / lib).is_file(), f"lib/{lib} missing"

    # The installed nimbus finds the installed plugins by itself.
    listing = run([prefix / "bin" / "nimbus", "--device", "help"], env={"PATH": "/usr/bin:/bin"})
    for name in in_tree_plugins():
        assert re.search(rf"^  {name} +\S+ \(ABI 1\.\d+\)  {re.escape(str(plugdir.resolve()))}/",
                         listing, re.M), f"{name} not listed:\n{listing}"

    # No path of the build or the source tree in what an author reads, and
    # the tree still works after being moved elsewhere (relocatable .pc).
    for f in list((prefix / "lib" / "pkgconfig").iterdir()) + \
            list((prefix / "include" / "nimbus").iterdir()):
        text = f.read_text()
        for p in (str(REPO_ROOT), str(nimbus_bin().parent)):
            assert p not in text, f"{f} names {p}"
    moved = shutil.move(str(prefix), str(tmp_path / "elsewhere"))
    cflags = run(["pkg-config", "--cflags", "nimbus-plugin"], env=pc_env(Path(moved)))
    inc = Path(cflags.split()[0][2:])
    assert inc.resolve() == (Path(moved) / "include").resolve(), cflags
    assert run(["pkg-config", "--variable=abi_major", "nimbus-plugin"],
               env=pc_env(Path(moved))).strip() == "1"


@pytest.mark.host
def test_template_builds_out_of_tree_and_replays_its_corpus(tmp_path):
    oot = build_out_of_tree(tmp_path)
    # -z defs: the plugin needs nothing from nimbus at link time.
    needed = run(["readelf", "-d", oot.plugin])
    assert "nimbus" not in "".join(l for l in needed.splitlines() if "NEEDED" in l), needed
    assert "nimbus_plugin_v1" in run(["nm", "-D", "--defined-only", oot.plugin])
    # Its harness (replay engine) runs the seeds against the out-of-tree .so.
    out = run([oot.build / "fuzz_virtio_template", CORPUS])
    assert re.search(r"virtio device id 4", out), out
    # nimbus loads it and reads its descriptor.
    listing = run([oot.prefix / "bin" / "nimbus", "--plugin-dir", oot.build, "--device", "help"])
    assert re.search(r"^  virtio_template +1\.0 \(ABI 1\.\d+\)", listing, re.M), listing
    assert "options: seed=" in listing


@pytest.mark.host
@pytest.mark.parametrize("engine", ["libfuzzer", "afl"])
def test_template_fuzz_harness_builds_for_each_engine(tmp_path, engine):
    """The same harness source, out of the tree, for libFuzzer (clang) and
    AFL++ (afl-clang-fast), each running a few hundred inputs."""
    cc = {"libfuzzer": "clang-14", "afl": "afl-clang-fast"}[engine]
    if not shutil.which(cc):
        pytest.fail(f"{cc} not installed: ci/install-deps.sh installs it")
    env = {"CC": cc, "AFL_QUIET": "1"}
    oot = build_out_of_tree(tmp_path, ["-DNIMBUS_FUZZ_ENGINE=" + engine], env)
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    harness = oot.build / "fuzz_virtio_template"
    if engine == "libfuzzer":
        out = run([harness, "-runs=300", "-seed=1", corpus], timeout=300)
        assert "Done 300 runs" in out, out
    else:
        # As ci/fuzz.sh runs AFL++: a few seconds of afl-fuzz on the seeds.
        env = dict(os.environ, AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1",
                   AFL_NO_AFFINITY="1", AFL_NO_UI="1",
                   ASAN_OPTIONS="abort_on_error=1:symbolize=0:detect_leaks=0",
                   UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:symbolize=0")
        out = tmp_path / "afl-out"
        run(["afl-fuzz", "-i", corpus, "-o", out, "-V", "5", "-t", "1000", "--", harness],
            env=env, timeout=300)
        stats = {k.strip(): v.strip() for k, v in
                 (l.split(":", 1) for l in
                  (out / "default" / "fuzzer_stats").read_text().splitlines() if ":" in l)}
        assert int(stats["execs_done"]) > 100, stats
        assert int(stats["saved_crashes"]) == 0, stats


@pytest.mark.host
def test_guide_steps_build_a_plugin(tmp_path):
    """plugins/README.md's step-by-step block, run literally (only the
    first three lines, the reader's own folders, are set by the test)."""
    text = GUIDE.read_text()
    m = re.search(r"<!-- guide-steps[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    assert m, "plugins/README.md lost its guide-steps block"
    lines = m.group(1).splitlines()
    assert [l.split("=", 1)[0] for l in lines[:3]] == ["NIMBUS_SRC", "NIMBUS_BUILD", "PREFIX"]
    script = "\n".join([f"NIMBUS_SRC={REPO_ROOT}",
                        f"NIMBUS_BUILD={nimbus_bin().parent}",
                        f"PREFIX={tmp_path / 'sdk'}"] + lines[3:]) + "\n"
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run(["bash", "-c", script], cwd=work, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600)
    assert res.returncode == 0, f"the guide's steps failed:\n{res.stdout}"
    # The renamed plugin exists under its new name and says so.
    assert (work / "my_dev" / "build" / "my_dev.so").is_file()
    assert re.search(r"^  my_dev +1\.0 \(ABI 1\.\d+\)", res.stdout, re.M), res.stdout


@pytest.mark.host
def test_device_help_lists_and_explains_refusals(tmp_path):
    """--device help shows why a plugin would be refused, with the loader's
    own messages, and which copy wins when two folders have one."""
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "junk.so").write_bytes(b"not an ELF file")
    shutil.copy(nimbus_bin().parent / "plugins" / "virtio_rng.so", d / "virtio_rng.so")
    out = run([nimbus_bin(), "--plugin-dir", d, "--device", "help"])
    assert re.search(r"^  junk +refused: cannot load plugin", out, re.M), out
    assert re.search(r"^  virtio_rng +\(hidden by the one found earlier\)", out, re.M), out
    assert re.search(rf"^  virtio_rng +1\.0 \(ABI 1\.\d+\)  {re.escape(str(d.resolve()))}/", out, re.M), out
    # Help alone is not a VM: no --kernel needed, exit 0, nothing on stderr.
    res = subprocess.run([str(nimbus_bin()), "--device", "help"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res


# --- in a guest -------------------------------------------------------------------


@pytest.fixture(scope="module")
def out_of_tree(tmp_path_factory):
    return build_out_of_tree(tmp_path_factory.mktemp("sdk"))


def guest_hwrng(vm, nbytes):
    out = vm.check_output(f"dd if=/dev/hwrng bs={nbytes} count=1 iflag=fullblock 2>/dev/null"
                          " | od -An -tx1 -v")
    data = bytes.fromhex("".join(out.split()))
    assert len(data) == nbytes, out
    return data


@pytest.mark.slow
def test_guest_reads_the_out_of_tree_template(vm_factory, out_of_tree):
    seed = secrets.randbits(63)
    vm = vm_factory.nimbus(extra=["--device", f"plugin={out_of_tree.plugin},seed={seed}"])
    vm.wait_ready(BOOT_TIMEOUT)
    # Linux's virtio-rng driver bound the device and is the current source.
    ids = vm.check_output("cat /sys/bus/virtio/devices/*/device").split()
    assert "0x0004" in ids, ids
    current = vm.check_output("cat /sys/class/misc/hw_random/rng_current")
    assert current.startswith("virtio_rng"), current
    # What the guest reads is the device's stream for this seed, in order.
    # The kernel's hwrng thread reads some of it first, so the offset is not
    # known (search the first MiB), and it may take its share between two
    # chunks of one read: each half must then still be found whole.
    stream = template_stream(seed, 1 << 20)
    first = guest_hwrng(vm, 64)
    second = guest_hwrng(vm, 64)
    for got in (first, second):
        found = stream.find(got) >= 0 or (stream.find(got[:32]) >= 0 and
                                          stream.find(got[32:]) >= 0)
        assert found, f"guest bytes are not the template's stream for seed {seed}: {got.hex()}"
    at = stream.find(first[:32])
    assert stream.find(second[:32], at + 32) > at, "the second read did not continue the stream"


@pytest.mark.slow
def test_guest_finds_a_plugin_uart_by_its_acpi_node(vm_factory):
    """A legacy device loaded with --device describes itself (ABI 1.4
    acpi_node): the guest's PNP bus lists a second PNP0501 with exactly the
    ports and IRQ the plugin decodes, and the serial driver finds a 16550A
    there."""
    vm = vm_factory.nimbus(extra=["--device", "plugin=uart16550,iobase=0x2f8,irq=3"])
    vm.wait_ready(BOOT_TIMEOUT)
    pnp = vm.check_output("for d in /sys/bus/pnp/devices/*; do "
                          "echo \"$(cat $d/id): $(tr '\\n' ' ' < $d/resources)\"; done")
    uarts = [l for l in pnp.splitlines() if l.startswith("PNP0501:")]
    assert len(uarts) == 2, pnp
    ours = [l for l in uarts if "io 0x2f8-0x2ff" in l]
    assert len(ours) == 1, pnp
    # PNP shows Linux's IRQ number; its IOAPIC pin is the GSI of the node.
    m = re.search(r"irq (\d+)", ours[0])
    assert m, pnp
    assert vm.check_output(f"cat /sys/kernel/irq/{m.group(1)}/hwirq") == "3", pnp
    serial = vm.check_output("cat /proc/tty/driver/serial")
    assert re.search(r"uart:16550A port:000002F8", serial), serial
