"""Start a process inside a bubblewrap sandbox, as an unprivileged user, with limits.

The sandbox sees the operating system read-only, the Python environment and the
lmkit package read-only, and a small private scratch directory (a size-limited
tmpfs, also its ``/tmp`` and ``HOME``). Nothing else: not the course directory,
not the gradebook, not other students' files. It has no network (a private
network namespace), its own process and IPC namespaces, and dies with its parent.
Resource limits (``setrlimit``) bound its CPU time, address space, processes,
file sizes and open files.

Gradings that run side by side (``lmkit.grader.parallel``) each run their
submission as a user of their own: the process limit counts all the processes of
a user, so a fork bomb in one sandbox must not leave another none to start.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lmkit

NOBODY = 65534
# The users submissions run as, one per sandbox alive at the same time on this machine. The first
# is `nobody` (a grading alone uses it); the others need no passwd entry (setpriv takes numbers)
# and lie in a range no distribution, systemd or container runtime hands out (1879048192-2147483647
# is unused in systemd's UID map, and below 2**31 for tools that read uids as signed).
SANDBOX_UIDS = (NOBODY, *range(2_000_000_001, 2_000_000_064))
INSTALL_HINT = (
    "Sandboxed grading needs bubblewrap (`bwrap`) and util-linux's `setpriv`: on Debian/Ubuntu run "
    "`apt-get install bubblewrap util-linux`. To grade without isolation, trusting every submission, "
    "pass --SandboxedExecute.sandbox=False."
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or setpriv) is missing, or cannot start a sandbox here."""


@dataclass(frozen=True)
class Limits:
    """What one submission's worker may use."""

    cpu_seconds: int = 600  # CPU time of the whole notebook's worker
    memory_bytes: int = 6 * 2**30  # address space; torch alone maps about 1.5 GiB
    processes: int = 64  # counts threads too (torch starts a few)
    file_bytes: int = 64 * 2**20  # largest file it may write
    scratch_bytes: int = 128 * 2**20  # its private tmpfs
    open_files: int = 256

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")

    def apply(self) -> None:
        """Set the limits on the current process (called in the child before exec)."""
        for rlimit, value in (
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_NPROC, self.processes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(rlimit, (value, value))
        os.setsid()


def readable_paths() -> list[Path]:
    """What the worker must read: the Python installation, the environment, lmkit."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(lmkit.__file__).resolve().parent}
    system = {Path(p) for p in ("/usr", "/etc", "/bin", "/lib", "/lib64", "/sbin")}
    # Drop paths already inside another one (e.g. a venv inside /usr).
    keep = [p for p in paths if not any(q != p and q in p.parents for q in paths | system)]
    return sorted(p for p in keep if p not in system)


def _dirs_for(path: Path, scratch: Path) -> list[str]:
    """bwrap creates missing parents of a bind mount as root-only (0700); make them
    traversable (all but the scratch directory itself, which stays writable by all)."""
    out: list[str] = []
    for parent in reversed(path.parents):
        if parent not in (Path("/"), Path("/usr"), scratch):
            out += ["--perms", "0755", "--dir", str(parent)]
    return out


def sandbox_processes(uids: Sequence[int] = SANDBOX_UIDS) -> list[int]:
    """Processes whose real user is one of ``uids`` (the one RLIMIT_NPROC counts): none should outlive a grading."""
    wanted, found = {str(u) for u in uids}, []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                real = next(line.split()[1] for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):  # gone meanwhile
            continue
        if real in wanted:
            found.append(int(pid))
    return found


def claim_uid() -> tuple[int, int]:
    """A sandbox user for one new sandbox: the first of SANDBOX_UIDS that no other sandbox holds
    and that no process runs as (one of an earlier sandbox may still be dying).

    Returns (uid, fd). The fd holds an exclusive lock on a file of that uid; :func:`popen` hands
    it to the sandbox and closes its own copy, so the lock lasts exactly as long as some process
    of that sandbox lives. A submission that unlocks it gains nothing: a uid with processes is
    never handed out again.
    """
    folder = Path(tempfile.gettempdir()) / f"lmkit-sandbox-uids-{os.geteuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = folder.lstat()
    if folder.is_symlink() or not folder.is_dir() or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SandboxUnavailable(f"{folder} must be a directory of this user that no one else can write (remove it)")
    for uid in SANDBOX_UIDS:
        fd = os.open(folder / str(uid), os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if sandbox_processes([uid]):
            os.close(fd)
            continue
        return uid, fd
    raise SandboxUnavailable(f"all {len(SANDBOX_UIDS)} sandbox users are busy: grade fewer submissions at a time on this machine")


def require() -> tuple[str, str]:
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if not bwrap or not setpriv:
        raise SandboxUnavailable(INSTALL_HINT)
    return bwrap, setpriv


def command(argv: Sequence[str], limits: Limits, scratch: str = "/tmp", uid: int = NOBODY) -> list[str]:
    """The bwrap command line that runs ``argv`` sandboxed (``argv[0]`` an absolute path), as ``uid`` when run as root."""
    bwrap, setpriv = require()
    args = [bwrap, "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "lib", "lib64", "sbin"):
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.exists():
            args += ["--ro-bind", str(p), str(p)]
    # The scratch tmpfs first, then the read-only binds: an environment that lives under
    # the scratch path (a clone in /tmp) is bound on top of the empty tmpfs.
    args += ["--size", str(limits.scratch_bytes), "--perms", "1777", "--tmpfs", scratch]
    for path in readable_paths():
        args += _dirs_for(path, Path(scratch)) + ["--ro-bind", str(path), str(path)]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--chdir",
        scratch,
        "--setenv",
        "HOME",
        scratch,
        "--setenv",
        "TMPDIR",
        scratch,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    if os.geteuid() == 0:  # never run submissions as root: become a sandbox user, with no capabilities
        args += [
            setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
    else:  # an unprivileged instructor: bwrap already runs the worker as them, without capabilities
        args += ["--cap-drop", "ALL"]
    return args + list(argv)


def popen(
    argv: Sequence[str], *, limits: Limits, sandbox: bool, pass_fds: Sequence[int], env: dict[str, str], cwd: str
) -> subprocess.Popen:
    """Start ``argv`` (sandboxed unless ``sandbox`` is False; then in ``cwd``) with its output on one pipe."""
    lock = None
    if not sandbox:
        full = list(argv)
    elif os.geteuid() == 0:
        uid, lock = claim_uid()
        full = command(argv, limits, uid=uid)
    else:  # no other user to become: every sandbox runs as the instructor (see README)
        full = command(argv, limits)
    try:
        return subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=[*pass_fds, *([lock] if lock is not None else [])],
            env=env,
            preexec_fn=limits.apply,
            cwd=cwd,
        )
    finally:
        if lock is not None:
            os.close(lock)  # the sandbox's processes hold the lock now
