"""Benchmarks in the nested test host, one boot per nested host.

Under load the nested host (ci/vmrun.sh: QEMU TCG with nested SVM) now and
then wedges its L2 guest or kills its own kernel, for QEMU and nimbus alike
(tests/integration/README.md).  A benchmark that runs all its boots in one
nested host loses the whole run then; here each boot gets a fresh host
(~10 s), and a boot that fails is rerun and counted.

The benchmark script is run again inside the nested host with its own
arguments plus `--vmms NAME --rounds 1 --one-boot-out FILE`; in that mode
it does one boot and writes its samples there (write_one_boot).
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]


def run(tool: str, script: Path, extra: Sequence[str], vmms: List[str], rounds: int,
        max_lost: int, outdir: Path, timeout: int = 360):
    """Boots alternate between the VMMs round by round.  Returns
    (samples {key tuple: [values]}, info {str: str}, lost {vmm: count})."""
    outdir.mkdir(parents=True, exist_ok=True)
    print(f"{tool}: no VMX/SVM /dev/kvm here: every boot runs in a nested test host "
          "(ci/vmrun.sh)", file=sys.stderr, flush=True)
    samples: Dict[Tuple, List[float]] = {}
    info: Dict[str, str] = {}
    lost = {name: 0 for name in vmms}
    for r in range(rounds):
        for name in (vmms if r % 2 == 0 else vmms[::-1]):
            while True:
                out = outdir / f"boot-{name}-{os.getpid()}.json"
                out.unlink(missing_ok=True)
                cmd = [str(ROOT / "ci" / "vmrun.sh"), "--timeout", str(timeout), "--",
                       "/usr/bin/python3", str(script), *extra, *sys.argv[1:],
                       "--vmms", name, "--rounds", "1", "--one-boot-out", str(out)]
                rc = subprocess.run(cmd, cwd=ROOT).returncode
                if rc == 0 and out.is_file():
                    got = json.loads(out.read_text())
                    out.unlink()
                    for key, vals in got["samples"]:
                        samples.setdefault(tuple(key), []).extend(vals)
                    info.update(got.get("info", {}))
                    break
                if rc == 2:
                    raise SystemExit(f"{tool}: the nested run refused its arguments")
                lost[name] += 1
                if lost[name] > max_lost:
                    raise SystemExit(f"{tool}: {name}: {lost[name]} boots lost "
                                     f"(nested host status {rc}); giving up")
                print(f"{tool}: WARNING: {name} boot lost (nested host status {rc}); "
                      f"rerunning it ({lost[name]} of at most {max_lost})",
                      file=sys.stderr, flush=True)
    return samples, info, lost


def write_one_boot(path: str, samples: Dict[Tuple, List[float]], info=None) -> None:
    Path(path).write_text(json.dumps(
        {"samples": [[list(k), v] for k, v in samples.items()], "info": info or {}}))
