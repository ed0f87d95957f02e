"""A class on one machine: nbgrader's exchange between separate users, and JupyterHub in front of it.

Both tests play a class with real local accounts (``useradd``, removed at the
end), because nbgrader names a submission after the account of the process that
submits it (``pwd.getpwuid(os.getuid())``): a bare numeric uid without a passwd
entry makes ``nbgrader submit`` fail, and JupyterHub's LocalProcessSpawner also
looks users up by name. Students run their commands as those accounts
(``setpriv``); the instructor is root.

- ``test_exchange_between_users``: release, list, fetch, submit, collect and
  grade with the command-line tools, and what the exchange's permissions keep
  students from doing (and what they do not: book/appendix_class.md).
- ``test_hub_assignments_tab``: the shipped ``lmkit/grader/hub/jupyterhub_config.py``
  on the loopback interface; a student's server spawned as that student; the
  Assignments tab's HTTP calls (list, fetch, submit); ``collect``; the
  instructor's server and its Formgrader on the course directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import submissions as S
from course import ASSIGNMENTS, BIN, ENV, REPO, new_course, run, solved, stop
from lmkit.grader import sandbox as sbx

AID = "00_bag_of_words"
NOTEBOOK = ASSIGNMENTS[AID]
COURSE_ID = "transformers-hands-on"
HUB_CONFIG = REPO / "lmkit" / "grader" / "hub" / "jupyterhub_config.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="plays several users: run as root (CI does)"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("setpriv", "useradd", "userdel")),
        reason="needs util-linux's setpriv and useradd/userdel (apt-get install util-linux passwd)",
    ),
]


def hidden_ancestor(path: Path) -> Path | None:
    """The outermost folder above ``path`` that other users cannot enter (mode without o+x), if any."""
    return next((p for p in reversed(path.parents) if not p.stat().st_mode & stat.S_IXOTH), None)


def env_paths() -> list[Path]:
    """What a student's process must reach: the Python installation and the course environment."""
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(BIN)})


def student_view() -> list[str]:
    """A command prefix that lets other users run this environment's programs.

    On a class machine Python lives in /usr or /opt, readable by all, and this is empty.
    Where it lives in a private folder (here: /root/.pyenv, and /root is 0700) bubblewrap,
    started as root, lays an empty tmpfs over that folder and binds the environment back into
    it read-only; everything else (/tmp, /etc/passwd, the exchange) is the real file system.
    """
    hidden = {p: a for p in env_paths() if (a := hidden_ancestor(p)) is not None}
    if not hidden:
        return []
    if shutil.which("bwrap") is None:
        pytest.skip(f"{sorted(set(hidden.values()))} hides the Python environment from other users: apt-get install bubblewrap")
    args = ["bwrap", "--dev-bind", "/", "/"]
    for top in sorted(set(hidden.values())):
        args += ["--tmpfs", str(top)]  # mode 0755: the users can pass through it
    for path, top in sorted(hidden.items()):
        for parent in reversed(path.parents):
            if top in parent.parents:
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
    # Its own PID namespace that dies with bwrap: stopping bwrap stops everything started inside.
    return [*args, "--unshare-pid", "--die-with-parent", "--"]


def as_user(user: str, home: Path) -> list[str]:
    """The command prefix that runs a program as ``user`` in a clean environment, as a login would."""
    env = [f"HOME={home}", f"USER={user}", f"LOGNAME={user}", f"PATH={BIN}:/usr/bin:/bin", "OMP_NUM_THREADS=1", "LANG=C.UTF-8"]
    return [*student_view(), "setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "env", "-i", *env]


def run_as(user: str, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*as_user(user, home), *args], cwd=home, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{user}: {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


class Accounts:
    """Local accounts made for one test; :meth:`remove` ends their processes and deletes them."""

    def __init__(self, root: Path):
        self.root, self.names, self.tag = root, [], secrets.token_hex(3)

    def add(self, role: str) -> tuple[str, Path]:
        name = f"lmk{self.tag}-{role}"  # lower case, under 32 characters, unlikely to exist
        home = self.root / "home" / name
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin", "--user-group", name], check=True
        )
        self.names.append(name)
        home.mkdir(parents=True)
        shutil.chown(home, name, name)
        home.chmod(0o700)  # no student reads another's work in progress (or their fetched copy)
        return name, home

    def uids(self) -> list[int]:
        return [int(subprocess.run(["id", "-u", n], capture_output=True, text=True, check=True).stdout) for n in self.names]

    def remove(self) -> None:
        for pid in sbx.sandbox_processes(self.uids()):  # only processes of the accounts this test made
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in self.names:
            subprocess.run(["userdel", name], capture_output=True)  # also removes the user's group


@pytest.fixture(scope="module")
def released() -> Iterator[dict]:
    """A course (root's, private) whose 00_bag_of_words is released to an exchange everyone can use."""
    root = Path(tempfile.mkdtemp(prefix="lmkit-class-"))
    root.chmod(0o755)  # mkdtemp's 0700 would keep the students out of the exchange and their homes
    if hidden_ancestor(root / "x") is not None:
        shutil.rmtree(root)
        pytest.skip(f"{root} is not reachable for other users: set TMPDIR to a folder they can enter")
    try:
        course = new_course(root / "course")
        course.chmod(0o700)  # solutions and the gradebook: the instructor's alone
        exchange = root / "exchange"
        run("nbgrader", "generate_assignment", AID, cwd=course)
        run("nbgrader", "release_assignment", AID, f"--Exchange.root={exchange}", cwd=course)
        yield {"root": root, "course": course, "exchange": exchange}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def accounts(released) -> Iterator[Accounts]:
    made = Accounts(released["root"])
    try:
        yield made
    finally:
        made.remove()


def hand_in(user: str, home: Path, nb: nbformat.NotebookNode) -> None:
    """The student's work: their fetched notebook replaced by ``nb``, owned by them as if they had saved it."""
    path = home / AID / NOTEBOOK
    assert path.is_file(), f"{user} fetched nothing to {path}"
    nbformat.write(nb, path)
    shutil.chown(path, user, user)


def flags(exchange: Path) -> list[str]:
    return [f"--course={COURSE_ID}", f"--Exchange.root={exchange}"]


def inbound_of(exchange: Path, user: str) -> Path:
    found = [p for p in (exchange / COURSE_ID / "inbound").iterdir() if p.name.startswith(f"{user}+{AID}+")]
    assert len(found) == 1, f"{user}: {found}"
    return found[0]


def auto_points(course: Path, student: str) -> tuple[float, float]:
    """(score, maximum) of the autograded code cells of one student's submission."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(AID, student)
        grades = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
        return sum(g.score for g in grades), sum(g.max_score for g in grades)


def test_exchange_between_users(released, accounts):
    course, exchange = released["course"], released["exchange"]
    work = {"solver": solved(AID), "blank": S.blank(AID)}
    students = {role: accounts.add(role) for role in work}

    def student_turn(role: str) -> str:
        user, home = students[role]
        listed = run_as(user, home, "nbgrader", "list", *flags(exchange)).stderr
        run_as(user, home, "nbgrader", "fetch_assignment", AID, *flags(exchange))
        hand_in(user, home, work[role])
        run_as(user, home, "nbgrader", "submit", AID, *flags(exchange))
        return listed

    with ThreadPoolExecutor(len(students)) as pool:  # a class submits at the same time
        listings = dict(zip(work, pool.map(student_turn, work)))
    for role, listed in listings.items():
        assert f"{COURSE_ID} {AID}" in listed, f"{role} did not see the release:\n{listed}"

    # What the exchange's permissions enforce, tried by a student against the other's submission.
    snoop, snoop_home = students["blank"]
    inbound, outbound = exchange / COURSE_ID / "inbound", exchange / COURSE_ID / "outbound"
    assert stat.S_IMODE(inbound.stat().st_mode) & 0o777 == 0o733  # others may enter and create, not list
    denied = run_as(snoop, snoop_home, "ls", str(inbound), check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    for target in (outbound / "planted.txt", outbound / AID / NOTEBOOK):
        proc = run_as(snoop, snoop_home, "sh", "-c", f'echo x >> "{target}"', check=False)
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (target, proc)
    # Not enforced: a submission folder is world-writable (0777, so that the instructor may delete it)
    # and its files world-readable. Only its unguessable name protects it: the random suffix nbgrader
    # adds (12 characters of a URL-safe alphabet) and the timestamp to the microsecond.
    other = inbound_of(exchange, students["solver"][0])
    assert len(other.name.rsplit("+", 1)[1]) >= 12, other.name
    assert stat.S_IMODE(other.stat().st_mode) == 0o777
    read = run_as(snoop, snoop_home, "cat", str(other / NOTEBOOK), check=False)
    assert read.returncode == 0, "nbgrader now protects a submission whose name is known: update book/appendix_class.md"

    # Not enforced either: who submitted. collect takes the student id from the folder's name; a folder
    # that another user owns draws a warning ("cheating attempt?") and is collected all the same.
    victim, _ = accounts.add("victim")
    forged = inbound / f"{victim}+{AID}+2100-01-01 00:00:00.000000 UTC+forgedforged"
    run_as(
        snoop,
        snoop_home,
        "sh",
        "-c",
        f'mkdir "{forged}" && cp {AID}/{NOTEBOOK} "{forged}/" && echo "2100-01-01 00:00:00.000000 UTC" > "{forged}/timestamp.txt"',
    )
    collected = run("nbgrader", "collect", AID, f"--Exchange.root={exchange}", cwd=course).stderr
    assert f"claims to be submitted by {victim} but is owned by {snoop}" in collected, collected[-3000:]
    assert (course / "submitted" / victim / AID / NOTEBOOK).is_file(), (
        "nbgrader now refuses forged submissions: update book/appendix_class.md"
    )
    shutil.rmtree(course / "submitted" / victim)  # what the instructor does after that warning
    for role, (user, _) in students.items():
        got = nbformat.read(course / "submitted" / user / AID / NOTEBOOK, as_version=4)
        assert [c.source for c in got.cells] == [c.source for c in work[role].cells], f"{role}: collected notebook differs"

    # Serial nbgrader autograde (sandboxed by the course's nbgrader_config.py): for two submissions it is
    # quicker than starting a Dask cluster; tests/test_parallel_grading.py shows the parallel grader equal to it.
    run("nbgrader", "autograde", AID, cwd=course)
    got, total = auto_points(course, students["solver"][0])
    assert total > 0 and got == total, (got, total)
    got, total = auto_points(course, students["blank"][0])
    assert total > 0 and got == 0, (got, total)


# --- JupyterHub -------------------------------------------------------------------------------

HUB_MISSING = [t for t in ("jupyterhub", "jupyterhub-singleuser", "configurable-http-proxy") if not (Path(BIN) / t).exists()]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def call(url: str, token: str, method: str = "GET", body: dict | None = None) -> tuple[int, object]:
    """One HTTP request with a token; the answer's status and body (JSON when it parses, else the text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text[-2000:]


def answered(status: int, body: object) -> bool:
    """An nbgrader extension's answer that says it worked ({"success": true, ...})."""
    return status == 200 and isinstance(body, dict) and body.get("success") is True


# The hub's configuration in the test: the shipped file, then a service token for the test (the
# admin's REST API) and, where the environment is private (see student_view), a spawner that starts
# each server through bwrap as root and becomes the user with setpriv instead of in preexec_fn.
TEST_CONFIG = """
import os
from jupyterhub.spawner import LocalProcessSpawner

c = get_config()
load_subconfig({shipped!r})
c.JupyterHub.services = [{{"name": "lmkit-test", "api_token": os.environ["LMKIT_TEST_TOKEN"]}}]
c.JupyterHub.load_roles = [
    {{"name": "lmkit-test", "scopes": ["admin:users", "admin:servers", "tokens"], "services": ["lmkit-test"]}}
]
VIEW = {view!r}


class ViewSpawner(LocalProcessSpawner):
    def make_preexec_fn(self, name):
        return lambda: None  # bwrap must start as root; setpriv below drops to the user

    async def start(self):
        home = self.user_env({{}})["HOME"]
        user = self.user.name
        self.cmd = [*VIEW[:-1], "--chdir", home, "--", "setpriv", f"--reuid={{user}}", f"--regid={{user}}", "--init-groups", *{cmd!r}]
        return await super().start()


if VIEW:
    c.JupyterHub.spawner_class = ViewSpawner
"""


@pytest.mark.skipif(bool(HUB_MISSING), reason=f'{HUB_MISSING} not installed: pip install -e ".[hub]"')
def test_hub_assignments_tab(released, accounts):
    course, exchange, root = released["course"], released["exchange"], released["root"]
    instructor, _ = accounts.add("teach")
    student, home = accounts.add("stud")
    hub_dir = root / f"hub-{accounts.tag}"
    hub_dir.mkdir(mode=0o700)
    port, hub_port, proxy_port = free_ports(3)
    token = secrets.token_hex(32)
    (hub_dir / "test_config.py").write_text(
        TEST_CONFIG.format(shipped=str(HUB_CONFIG), view=student_view(), cmd=[str(Path(BIN) / "jupyterhub-singleuser")])
    )
    env = {
        **ENV,
        "OMP_NUM_THREADS": "1",
        "LMKIT_TEST_TOKEN": token,
        "LMKIT_HUB_DIR": str(hub_dir),
        "LMKIT_EXCHANGE": str(exchange),
        "LMKIT_COURSE_DIR": str(course),
        "LMKIT_INSTRUCTORS": instructor,
        "LMKIT_HUB_PORT": str(port),
        "LMKIT_HUB_API_PORT": str(hub_port),
        "LMKIT_PROXY_API_PORT": str(proxy_port),
    }
    log = open(hub_dir / "hub.log", "w")
    hub = subprocess.Popen(
        [str(Path(BIN) / "jupyterhub"), "-f", str(hub_dir / "test_config.py")], cwd=hub_dir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # up to 60 s for the hub and its proxy to answer
            try:
                if call(f"{base}/hub/api/", token)[0] == 200:
                    break
            except OSError:
                pass
            assert hub.poll() is None, (hub_dir / "hub.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            raise AssertionError("the hub did not answer in 60 s\n" + (hub_dir / "hub.log").read_text()[-3000:])

        def spawn(user: str) -> str:
            """Create ``user`` in the hub (REST API, admin token), start their server, return a token of theirs."""
            status, _ = call(f"{base}/hub/api/users/{user}", token, "POST")
            assert status in (201, 409), status  # 409: the hub knew the user already (allowed_users)
            status, _ = call(f"{base}/hub/api/users/{user}/server", token, "POST")
            assert status in (201, 202), (status, (hub_dir / "hub.log").read_text()[-3000:])
            for _ in range(120):
                if call(f"{base}/hub/api/users/{user}", token)[1]["servers"].get("", {}).get("ready"):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"{user}'s server did not start in 60 s\n" + (hub_dir / "hub.log").read_text()[-3000:])
            status, made = call(f"{base}/hub/api/users/{user}/tokens", token, "POST", {"note": "the test's browser"})
            assert status == 201, status
            return made["token"]

        mine = spawn(student)
        proxy = int((hub_dir / "jupyterhub-proxy.pid").read_text())  # the hub started it and must stop it
        # The server runs as the student, not as root.
        pids = sbx.sandbox_processes([int(subprocess.run(["id", "-u", student], capture_output=True, text=True).stdout)])
        assert pids, "no process runs as the student"

        # What the Assignments tab sends, with a token of the student's (as their browser's cookie would be).
        user_api = f"{base}/user/{student}"
        assert call(f"{user_api}/formgrader", mine)[0] == 404  # jupyter_server_config.py: no Formgrader for students

        def listing() -> dict[str, str]:
            status, body = call(f"{user_api}/assignments?course_id={COURSE_ID}", mine)
            assert answered(status, body), (status, body)
            return {a["status"]: a for a in body["value"] if a["assignment_id"] == AID}

        assert "released" in listing()
        what = {"course_id": COURSE_ID, "assignment_id": AID}
        status, body = call(f"{user_api}/assignments/fetch", mine, "POST", what)
        assert answered(status, body), (status, body)
        assert "fetched" in listing()
        nb = solved(AID)
        hand_in(student, home, nb)
        status, body = call(f"{user_api}/assignments/submit", mine, "POST", what)
        assert answered(status, body), (status, body)
        submitted = listing()["submitted"]["submissions"]
        assert len(submitted) == 1 and submitted[0]["student_id"] == student, submitted

        run("nbgrader", "collect", AID, f"--Exchange.root={exchange}", cwd=course)
        got = nbformat.read(course / "submitted" / student / AID / NOTEBOOK, as_version=4)
        assert [c.source for c in got.cells] == [c.source for c in nb.cells]

        # The instructor's server: the Formgrader, on the course directory (now the instructor's).
        subprocess.run(["chown", "-R", f"{instructor}:", str(course)], check=True)
        theirs = spawn(instructor)
        status, body = call(f"{base}/user/{instructor}/formgrader/api/assignments", theirs)
        assert status == 200 and isinstance(body, list), (status, str(body)[-300:], (hub_dir / "hub.log").read_text()[-4000:])
        assert {a["name"] for a in body} == set(ASSIGNMENTS), body  # every assignment of solutions/, as in the course's config
        assert next(a for a in body if a["name"] == AID)["status"] == "released", body
    finally:
        stop(hub, timeout=60)  # the hub stops the users' servers and the proxy, then exits
        log.close()
    left = sbx.sandbox_processes(accounts.uids())
    assert not left, f"the student's server outlived the hub: {left}"
    assert not Path(f"/proc/{proxy}").exists(), f"the proxy (pid {proxy}) outlived the hub"
