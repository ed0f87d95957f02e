"""JupyterHub for one class on one machine: local users, nbgrader's exchange on local disk.

Copy this folder (or point at it) and start the hub as root, with the course
environment's ``bin/`` first on PATH:

    jupyterhub -f lmkit/grader/hub/jupyterhub_config.py

Everything a class changes is read from the environment, so the file itself
stays as shipped (book: appendix "Running a class"):

    LMKIT_COURSE_ID     nbgrader's course id (default: the id in the repository's nbgrader_config.py)
    LMKIT_COURSE_DIR    the instructor's course directory: solutions/, gradebook.db, submitted/ (default /srv/course)
    LMKIT_EXCHANGE      nbgrader's exchange, writable by every user (default /srv/nbgrader/exchange)
    LMKIT_INSTRUCTORS   comma-separated user names that get the Formgrader and are the hub's admins (default: instructor)
    LMKIT_STUDENTS      comma-separated user names allowed to log in (more can be added by an admin later)
    LMKIT_HUB_DIR       where the hub keeps its database and cookie secret (default /srv/jupyterhub)
    LMKIT_HUB_IP        the address the hub listens on (default 127.0.0.1: this machine only)
    LMKIT_HUB_PORT      its public port (default 8000); LMKIT_HUB_API_PORT, LMKIT_PROXY_API_PORT the
                        internal ones (default 8081, 8001)
    LMKIT_MEM_LIMIT     the memory a user's server is told it has (default 4G; LocalProcessSpawner does not enforce it)

Each user is a local account (``useradd``) and logs in with its system password
(PAM, JupyterHub's default authenticator); the hub, running as root, starts each
user's Jupyter server as that user (LocalProcessSpawner), so the operating
system, not the hub, keeps the students' files apart; nbgrader's exchange rests
on the same file ownership and permissions (what they protect and what they do
not: the appendix).
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

HERE = Path(__file__).resolve().parent
ENV_BIN = Path(sys.executable).parent  # the course environment the hub runs in: its singleuser server and nbgrader
COURSE_ID = os.environ.get("LMKIT_COURSE_ID", "transformers-hands-on")
COURSE_DIR = os.environ.get("LMKIT_COURSE_DIR", "/srv/course")
EXCHANGE = os.environ.get("LMKIT_EXCHANGE", "/srv/nbgrader/exchange")
INSTRUCTORS = {name.strip() for name in os.environ.get("LMKIT_INSTRUCTORS", "instructor").split(",") if name.strip()}
HUB_DIR = Path(os.environ.get("LMKIT_HUB_DIR", "/srv/jupyterhub"))
IP = os.environ.get("LMKIT_HUB_IP", "127.0.0.1")

# Network: the public port on IP; the hub's API and the proxy's API only on the loopback interface,
# since nothing but the hub, the proxy and the users' servers on this machine talk to them.
c.JupyterHub.ip = IP
c.JupyterHub.port = int(os.environ.get("LMKIT_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("LMKIT_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('LMKIT_PROXY_API_PORT', '8001')}"
# The proxy: the pip package configurable-http-proxy (a Python port of the Node.js proxy), so that the
# whole set-up installs with pip alone (`pip install -e ".[hub]"`). Node's original takes the same
# arguments: put it first on PATH, or name it here, and nothing else changes.
c.ConfigurableHTTPProxy.command = [str(ENV_BIN / "configurable-http-proxy")]

# State: the user database (SQLite) and the cookie secret stay out of the course repository.
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "jupyterhub-proxy.pid")

# Users: local accounts. Only the instructors are admins; a student must be in allowed_users
# (or added by an admin, in the admin page or the REST API) to log in.
c.Authenticator.admin_users = INSTRUCTORS
c.Authenticator.allowed_users = INSTRUCTORS | {n.strip() for n in os.environ.get("LMKIT_STUDENTS", "").split(",") if n.strip()}

# Servers: one process per user, as that user, in the user's home directory, from the course environment.
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [str(ENV_BIN / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
# Shown to the server (MEM_LIMIT) and to resource monitors, not enforced by LocalProcessSpawner: enforcing it
# takes a spawner with cgroups or containers (book: appendix "Running a class", what changes for a real class).
c.Spawner.mem_limit = os.environ.get("LMKIT_MEM_LIMIT", "4G")


def per_role(spawner):
    """Before each server starts: the nbgrader settings of its user's role.

    The single-user servers read HERE/nbgrader_config.py and HERE/jupyter_server_config.py
    (JUPYTER_CONFIG_PATH); those read the variables set here. Students get the exchange and the
    Assignments tab; instructors also the Formgrader, working in the course directory.
    """
    instructor = spawner.user.name in INSTRUCTORS
    spawner.environment.update(
        {
            "JUPYTER_CONFIG_PATH": str(HERE),
            "PATH": f"{ENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",  # nbgrader calls alembic and kernels by name
            "LMKIT_ROLE": "instructor" if instructor else "student",
            "LMKIT_COURSE_ID": COURSE_ID,
            "LMKIT_EXCHANGE": EXCHANGE,
        }
    )
    if instructor:
        spawner.environment["LMKIT_COURSE_DIR"] = COURSE_DIR
        # nbgrader's Formgrader works only on a course directory inside the server's root folder.
        spawner.notebook_dir = COURSE_DIR


c.Spawner.pre_spawn_hook = per_role
