"""nbgrader's settings for every single-user server the hub starts (jupyterhub_config.py puts this folder on JUPYTER_CONFIG_PATH).

Students and instructors share the exchange and the course id; the instructor's
server also works in the course directory, whose own nbgrader_config.py (the
repository's: solutions/ as source, sandboxed autograding) it loads.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

if os.environ.get("LMKIT_ROLE") == "instructor":
    load_subconfig(os.path.join(os.environ["LMKIT_COURSE_DIR"], "nbgrader_config.py"))  # noqa: F821 (provided by traitlets)
    c.CourseDirectory.root = os.environ["LMKIT_COURSE_DIR"]
# After the course's file: the hub's settings win.
c.CourseDirectory.course_id = os.environ["LMKIT_COURSE_ID"]
c.Exchange.root = os.environ["LMKIT_EXCHANGE"]
