"""Argument handling and command construction of dev_cli.sh.

Nothing here starts a container: NIMBUS_DEV_CLI_DRY_RUN=1 makes the script
print the engine and build commands instead of running them, stub
podman/docker executables prove that dry runs never call the engine, and
--local runs happen in a scratch copy of the script whose ci/ helpers are
stubs that record their arguments. ci/test-container.sh exercises the real
image.
"""

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.host

ROOT = Path(__file__).resolve().parents[2]
DEV_CLI = ROOT / "dev_cli.sh"
SUBCOMMANDS = ["build", "tests", "fuzz", "cloud-image", "shell", "clean", "build-container"]

# Options each subcommand's --help must document.
SUBCOMMAND_OPTIONS = {
    "build": ["--release", "--debug", "--sanitize", "--werror", "--build-dir", "--help"],
    "tests": ["--unit", "--integration", "--fuzz", "--all", "--sanitize", "--help"],
    "fuzz": ["--list", "--engine", "--duration", "--jobs", "--all", "--help"],
    "cloud-image": ["--no-boot", "--all-tests", "--build-dir", "--help"],
    "shell": ["--", "--help"],
    "clean": ["--images", "--help"],
    "build-container": ["--force", "--base", "--help"],
}


def image_tag(tree=ROOT):
    digest = hashlib.sha256((tree / "Dockerfile").read_bytes()).hexdigest()
    return f"nimbus-dev:{digest[:12]}"


def base_env(**extra):
    """The caller's environment without anything that changes dev_cli.sh's
    behaviour, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NIMBUS_") and k not in ("CI", "PYTEST_ADDOPTS")
    }
    env.update(extra)
    return env


def run(args, env=None, script=DEV_CLI, timeout=60):
    return subprocess.run(
        [str(script), *args],
        env=env if env is not None else base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def engine_stubs(tmp_path):
    """A PATH whose podman and docker only record that they were called."""
    bindir = tmp_path / "stub-bin"
    bindir.mkdir()
    log = tmp_path / "engine.log"
    for name in ("podman", "docker"):
        write_exe(bindir / name, f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 97\n')
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "log": log}


@pytest.fixture
def engineless_path(tmp_path):
    """A PATH with every executable of the current PATH except podman/docker."""
    bindir = tmp_path / "no-engine-bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            if entry.name in ("podman", "docker") or (bindir / entry.name).exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                (bindir / entry.name).symlink_to(entry.path)
    return str(bindir)


@pytest.fixture
def tree(tmp_path):
    """A scratch source tree: dev_cli.sh with its ci/container.sh, the
    Dockerfile, and stub ci/ helpers that append their argv to calls.log."""
    src = tmp_path / "src"
    (src / "ci").mkdir(parents=True)
    shutil.copy2(DEV_CLI, src / "dev_cli.sh")
    shutil.copy2(ROOT / "ci" / "container.sh", src / "ci" / "container.sh")
    shutil.copy2(ROOT / "Dockerfile", src / "Dockerfile")
    log = tmp_path / "calls.log"
    for name in ("fuzz.sh", "test-integration.sh", "cloud-image.sh"):
        write_exe(
            src / "ci" / name,
            f'#!/bin/sh\necho "{name}" "$@" >> "{log}"\n'
            'if [ "$1" = --help ]; then echo "stub usage of ci/fuzz.sh"; fi\n',
        )
    return {"src": src, "script": src / "dev_cli.sh", "log": log}


def calls(tree):
    return tree["log"].read_text().splitlines() if tree["log"].exists() else []


def dry_words(result):
    """The words of the single '+ podman/docker ... run' line of a dry run."""
    lines = [l for l in result.stdout.splitlines() if l.startswith("+ ")]
    assert len(lines) == 1, result.stdout
    return lines[0][2:].split(" ")


# ---------------------------------------------------------------- help


def test_help_lists_every_subcommand():
    r = run(["--help"])
    assert r.returncode == 0, r.stderr
    section = r.stdout.split("Subcommands:")[1].split("\n\n")[0]
    listed = [line.split()[0] for line in section.strip().splitlines()]
    for sub in SUBCOMMANDS:
        assert sub in listed, f"{sub} missing from --help"
    for opt in ("--local", "--engine", "--image"):
        assert opt in r.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help_documents_its_options(sub):
    r = run([sub, "--help"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: ./dev_cli.sh [GLOBAL OPTIONS] {sub}")
    for opt in SUBCOMMAND_OPTIONS[sub]:
        assert opt in r.stdout, f"'{sub} --help' does not mention {opt}"


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_subcommand_is_subcommand_help(sub):
    assert run(["help", sub]).stdout == run([sub, "-h"]).stdout


def test_local_subcommand_help(engineless_path):
    # Help never needs a container engine.
    r = run(["--local", "build", "--help"], env=base_env(PATH=engineless_path))
    assert r.returncode == 0, r.stderr
    assert "--sanitize" in r.stdout


def test_fuzz_help_includes_the_fuzz_script_help(tree):
    r = run(["fuzz", "--help"], script=tree["script"])
    assert r.returncode == 0, r.stderr
    assert "ci/fuzz.sh" in r.stdout
    assert "stub usage of ci/fuzz.sh" in r.stdout


# ------------------------------------------------------------- bad input


def test_no_subcommand_fails():
    r = run([])
    assert r.returncode != 0
    assert "no subcommand" in r.stderr


def test_unknown_subcommand_is_named():
    r = run(["frobnicate"])
    assert r.returncode != 0
    assert "unknown subcommand 'frobnicate'" in r.stderr


def test_unknown_global_option_is_named():
    r = run(["--frobnicate", "build"])
    assert r.returncode != 0
    assert "'--frobnicate'" in r.stderr


@pytest.mark.parametrize("sub", ["build", "tests", "shell", "clean", "build-container"])
def test_unknown_subcommand_option_is_named(sub):
    r = run([sub, "--bogus-option"])
    assert r.returncode != 0
    assert "unknown option '--bogus-option'" in r.stderr
    assert sub in r.stderr


def test_unknown_engine_is_named():
    r = run(["--engine", "bogus", "build"])
    assert r.returncode != 0
    assert "'bogus'" in r.stderr and "podman or docker" in r.stderr


@pytest.mark.parametrize("opt", ["--engine", "--image"])
def test_option_without_value(opt):
    r = run([opt])
    assert r.returncode != 0
    assert f"option '{opt}' needs a value" in r.stderr


def test_shell_command_needs_double_dash():
    r = run(["shell", "ls"])
    assert r.returncode != 0
    assert "'ls'" in r.stderr and "--" in r.stderr


def test_runner_args_need_exactly_one_suite():
    r = run(["tests", "--unit", "--fuzz", "--", "-R", "foo"])
    assert r.returncode != 0
    assert "exactly one" in r.stderr


def test_container_build_dir_must_be_in_the_tree(engine_stubs):
    r = run(["--engine", "podman", "build", "--build-dir", "/elsewhere/b"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode != 0
    assert "'/elsewhere/b' is outside the source tree" in r.stderr


def test_build_container_rejects_local():
    r = run(["--local", "build-container"])
    assert r.returncode != 0
    assert "--local" in r.stderr


# ---------------------------------------------------------------- engines


@pytest.mark.parametrize("sub", ["build", "tests", "shell", "build-container"])
def test_no_container_engine(sub, engineless_path):
    r = run([sub], env=base_env(PATH=engineless_path))
    assert r.returncode != 0
    assert "no container engine found" in r.stderr


def test_named_engine_must_exist(engineless_path):
    r = run(["--engine", "podman", "build"], env=base_env(PATH=engineless_path))
    assert r.returncode != 0
    assert "'podman'" in r.stderr and "not installed" in r.stderr


def test_docker_without_daemon(tmp_path, engineless_path):
    bindir = tmp_path / "docker-only"
    bindir.mkdir()
    write_exe(bindir / "docker", "#!/bin/sh\necho 'Cannot connect' >&2\nexit 1\n")
    r = run(["build"], env=base_env(PATH=f"{bindir}:{engineless_path}"))
    assert r.returncode != 0
    assert "docker" in r.stderr and "daemon does not answer" in r.stderr


def test_local_needs_no_engine(tree, engineless_path):
    r = run(["--local", "build"], script=tree["script"],
            env=base_env(PATH=engineless_path, NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    assert "+ cmake" in r.stdout


# ---------------------------------------------------- container commands


def test_dry_run_podman_command(engine_stubs):
    r = run(["--engine", "podman", "tests", "--unit"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    words = dry_words(r)
    cmd = " ".join(words)
    assert words[:3] == ["podman", "--runtime", "runc"]
    assert words[3] == "run"
    for flag in ("--rm", "--init", "--network host", "--security-opt label=disable",
                 "--cap-add NET_ADMIN", f"--volume {ROOT}:{ROOT}", f"--workdir {ROOT}",
                 "--device /dev/net/tun" if os.path.exists("/dev/net/tun") else "--rm"):
        assert flag in cmd, flag
    if os.path.exists("/dev/kvm"):
        assert "--device /dev/kvm" in cmd
    else:
        assert "/dev/kvm" not in cmd
    tail = [image_tag(), str(DEV_CLI), "--local", "tests", "--unit"]
    assert words[-len(tail):] == tail
    # A dry run must not touch the engine.
    assert not engine_stubs["log"].exists()


def test_dry_run_passes_environment(engine_stubs):
    env = base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1",
                   NIMBUS_FOO="1", CI="true", PYTEST_ADDOPTS="-k boot", UNRELATED="x")
    words = dry_words(run(["--engine", "podman", "build"], env=env))
    passed = {words[i + 1] for i, w in enumerate(words) if w == "--env"}
    assert {"NIMBUS_FOO", "CI", "PYTEST_ADDOPTS", "NIMBUS_DEV_CLI_IN_CONTAINER=1"} <= passed
    assert "UNRELATED" not in passed
    assert "NIMBUS_DEV_CLI_DRY_RUN" not in passed


def test_dry_run_docker_command(engine_stubs):
    r = run(["--engine", "docker", "shell", "--", "true"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    words = dry_words(r)
    assert words[:2] == ["docker", "run"]
    assert "--runtime" not in words
    assert words[-4:] == ["--local", "shell", "--", "true"]
    assert not engine_stubs["log"].exists()


def test_image_override(engine_stubs):
    r = run(["--engine", "podman", "--image", "my/image:1", "build"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1"))
    words = dry_words(r)
    assert "my/image:1" in words and image_tag() not in words


def test_image_tag_follows_dockerfile(tree, engine_stubs):
    env = base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1")
    before = dry_words(run(["--engine", "podman", "build"], script=tree["script"], env=env))
    assert image_tag(tree["src"]) in before
    with open(tree["src"] / "Dockerfile", "a") as f:
        f.write("# changed\n")
    after = dry_words(run(["--engine", "podman", "build"], script=tree["script"], env=env))
    assert image_tag(tree["src"]) in after
    assert image_tag(tree["src"]) not in before


def test_build_container_dry_run(engine_stubs):
    r = run(["--engine", "podman", "build-container", "--base", "example/base:1"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if l.startswith("+ ")][-1]
    assert line.startswith("+ podman --runtime runc build --network host")
    assert f"-t {image_tag()}" in line
    assert "--build-arg BASE_IMAGE=example/base:1" in line
    assert not engine_stubs["log"].exists()


def test_podman_runtime_override(engine_stubs):
    env = base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1", NIMBUS_PODMAN_RUNTIME="")
    words = dry_words(run(["--engine", "podman", "build"], env=env))
    assert words[:2] == ["podman", "run"]


# ------------------------------------------------------------ local steps


@pytest.mark.parametrize(
    "opts,builddir,buildtype,sanitize",
    [
        ([], "build", "RelWithDebInfo", "OFF"),
        (["--release"], "build", "RelWithDebInfo", "OFF"),
        (["--debug"], "build-debug", "Debug", "OFF"),
        (["--sanitize"], "build-asan", "RelWithDebInfo", "ON"),
        (["--debug", "--sanitize"], "build-debug-asan", "Debug", "ON"),
        (["--build-dir", "out/x"], "out/x", "RelWithDebInfo", "OFF"),
    ],
)
def test_local_build_steps(tree, opts, builddir, buildtype, sanitize):
    r = run(["--local", "build", *opts], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    d = tree["src"] / builddir
    assert r.stdout.splitlines() == [
        f"+ cmake -S {tree['src']} -B {d} -G Ninja -DCMAKE_BUILD_TYPE={buildtype} "
        f"-DNIMBUS_WERROR=OFF -DNIMBUS_SANITIZE={sanitize}",
        f"+ ninja -C {d}",
    ]


@pytest.mark.parametrize("opts,env", [(["--werror"], {}), ([], {"CI": "true"})])
def test_werror(tree, opts, env):
    r = run(["--local", "build", *opts], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1", **env))
    assert "-DNIMBUS_WERROR=ON" in r.stdout


def test_build_passes_cmake_args(tree):
    r = run(["--local", "build", "--", "-DNIMBUS_BUILD_FUZZ=ON"], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.stdout.splitlines()[0].endswith("-DNIMBUS_SANITIZE=OFF -DNIMBUS_BUILD_FUZZ=ON")


def test_unit_tests_build_then_ctest(tree):
    r = run(["--local", "tests", "--unit", "--debug", "--", "-R", "x"], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    d = tree["src"] / "build-debug"
    assert lines[0].startswith(f"+ cmake -S {tree['src']} -B {d} ")
    assert lines[0].endswith("-DNIMBUS_SANITIZE=OFF")  # ctest args stay out of cmake
    assert lines[1:] == [f"+ ninja -C {d}", f"+ ctest --test-dir {d} --output-on-failure -R x"]


def test_tests_default_to_unit(tree):
    r = run(["--local", "tests"], script=tree["script"], env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert "+ ctest" in r.stdout


def test_build_warns_without_kvm(tree):
    r = run(["--local", "build"], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1", NIMBUS_DEV_CLI_KVM_DEVICE="/nonexistent/kvm"))
    assert r.returncode == 0, r.stderr
    assert "warning: /nonexistent/kvm is missing" in r.stderr


@pytest.mark.parametrize("local", [True, False])
def test_integration_tests_without_kvm_warn_and_run(tree, engine_stubs, local):
    """Without /dev/kvm the guest tests still run, in the nested test host
    (QEMU TCG), so this is a warning, not an error."""
    args = (["--local"] if local else ["--engine", "podman"]) + ["tests", "--integration"]
    r = run(args, script=tree["script"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1",
                         NIMBUS_DEV_CLI_KVM_DEVICE="/nonexistent/kvm"))
    assert r.returncode == 0, r.stderr
    assert "warning: /nonexistent/kvm is missing" in r.stderr
    assert "nested test host" in r.stderr
    assert "+ " in r.stdout


def test_integration_builds_then_runs_the_runner(tree, tmp_path):
    fake_kvm = tmp_path / "kvm"
    fake_kvm.touch()
    r = run(["--local", "tests", "--integration", "--debug", "--", "-k", "boot"],
            script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_KVM_DEVICE=str(fake_kvm), NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    d = tree["src"] / "build-debug"
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"+ cmake -S {tree['src']} -B {d} ")
    assert lines[1:] == [f"+ ninja -C {d}", f"+ export NIMBUS_BIN={d}/nimbus",
                         f"+ {tree['src']}/ci/test-integration.sh -k boot"]


def test_integration_runner_gets_its_arguments(tree, tmp_path):
    fake_kvm = tmp_path / "kvm"
    fake_kvm.touch()
    # With NIMBUS_BIN set nothing is built, so the stub runner really runs.
    r = run(["--local", "tests", "--integration", "--", "-k", "boot"], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_KVM_DEVICE=str(fake_kvm), NIMBUS_BIN="/x/nimbus"))
    assert r.returncode == 0, r.stderr
    assert calls(tree) == ["test-integration.sh -k boot"]


def test_cloud_image_builds_the_image_then_boots_it(tree, tmp_path):
    """cloud-image: the image (ci/cloud-image.sh), nimbus, then the disk-only
    boot of test_cloud_image.py through the integration runner."""
    r = run(["--local", "cloud-image"], script=tree["script"],
            env=base_env(NIMBUS_DEV_CLI_DRY_RUN="1"))
    assert r.returncode == 0, r.stderr
    d = tree["src"] / "build"
    lines = r.stdout.splitlines()
    assert lines[0] == f"+ {tree['src']}/ci/cloud-image.sh --print-dir"
    assert lines[1].startswith(f"+ cmake -S {tree['src']} -B {d} ")
    assert lines[2] == f"+ ninja -C {d}"
    assert lines[3] == (f"+ {tree['src']}/ci/test-integration.sh --guest-only "
                        "-k test_disk_only_boot_cloud_init_and_ssh")
    # --no-boot stops after the image; the stub script really runs.
    r = run(["--local", "cloud-image", "--no-boot"], script=tree["script"], env=base_env())
    assert r.returncode == 0, r.stderr
    assert calls(tree) == ["cloud-image.sh --print-dir"]


def test_cloud_image_container_keeps_the_cache_and_may_mknod(engine_stubs, tmp_path):
    cache = tmp_path / "images"
    r = run(["--engine", "podman", "cloud-image", "--no-boot"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1",
                         NIMBUS_CLOUD_IMAGE_DIR=str(cache)))
    assert r.returncode == 0, r.stderr
    cmd = " ".join(dry_words(r))
    assert "--cap-add MKNOD" in cmd
    assert f"--volume {cache}:{cache}" in cmd
    assert f"--env NIMBUS_CLOUD_IMAGE_DIR={cache}" in cmd


def test_fuzz_suite_is_a_smoke_run(tree):
    r = run(["--local", "tests", "--fuzz"], script=tree["script"], env=base_env())
    assert r.returncode == 0, r.stderr
    assert calls(tree) == ["fuzz.sh --smoke"]


def test_fuzz_passes_arguments_unchanged(tree):
    args = ["decoder", "--engine", "afl", "--duration", "10m", "--jobs", "2"]
    r = run(["--local", "fuzz", *args], script=tree["script"], env=base_env())
    assert r.returncode == 0, r.stderr
    r = run(["--local", "fuzz", "--", "--help"], script=tree["script"], env=base_env())
    assert r.returncode == 0, r.stderr
    assert calls(tree) == ["fuzz.sh " + " ".join(args), "fuzz.sh --help"]


def test_runner_failure_is_the_exit_status(tree):
    write_exe(tree["src"] / "ci" / "fuzz.sh", "#!/bin/sh\nexit 3\n")
    r = run(["--local", "fuzz", "--list"], script=tree["script"], env=base_env())
    assert r.returncode == 3


@pytest.mark.parametrize(
    "args,helper",
    [
        (["fuzz", "--list"], "ci/fuzz.sh"),
        (["tests", "--fuzz"], "ci/fuzz.sh"),
        (["tests", "--all"], "ci/test-integration.sh"),
    ],
)
@pytest.mark.parametrize("local", [True, False])
def test_missing_helper_script(tree, engine_stubs, tmp_path, args, helper, local):
    fake_kvm = tmp_path / "kvm"
    fake_kvm.touch()
    (tree["src"] / helper).unlink()
    args = (["--local"] if local else ["--engine", "podman"]) + args
    r = run(args, script=tree["script"],
            env=base_env(PATH=engine_stubs["PATH"], NIMBUS_DEV_CLI_DRY_RUN="1",
                         NIMBUS_DEV_CLI_KVM_DEVICE=str(fake_kvm)))
    assert r.returncode != 0
    assert f"{helper} is missing" in r.stderr
    assert "+ " not in r.stdout  # nothing started


def test_local_shell_runs_the_command(tree):
    r = run(["--local", "shell", "--", "sh", "-c", "echo hi; exit 7"], script=tree["script"],
            env=base_env())
    assert r.returncode == 7
    assert r.stdout == "hi\n"


def test_clean_removes_only_its_build_dirs(tree):
    src = tree["src"]
    for d in ("build", "build-debug", "build-asan", "build-debug-asan", "build-alice"):
        (src / d / "sub").mkdir(parents=True)
        (src / d / "sub" / "f").write_text("x")
    r = run(["clean"], script=tree["script"], env=base_env())
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in src.iterdir() if p.name.startswith("build")) == ["build-alice"]


# ------------------------------------------------------------- Dockerfile


def test_dockerfile_has_every_dependency():
    text = (ROOT / "Dockerfile").read_text()
    for pkg in ("build-essential", "gcc", "clang-14", "llvm-14", "libclang-rt-14-dev", "cmake",
                "ninja-build", "pkg-config", "libcmocka-dev", "liburing-dev", "libseccomp-dev",
                "libcjson-dev", "libslirp-dev", "afl++", "acpica-tools", "qemu-system-x86",
                "busybox-static", "cpio", "kmod", "e2fsprogs", "python3", "python3-pytest",
                "iproute2", "procps", "strace", "git", "ca-certificates", "xz-utils", "zstd",
                "file"):
        assert f"        {pkg} \\\n" in text or f"        {pkg};" in text, pkg
    assert text.count("apt-get update") == 1
    assert "--no-install-recommends" in text
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert "ARG BASE_IMAGE=debian:bookworm" in text
