"""Jupyter Server settings for the single-user servers the hub starts: students do not get the Formgrader.

nbgrader's pip package enables all its server extensions for everyone; a student
needs only the Assignments tab (assignment_list) and the Validate button.
"""

import os

c = get_config()  # noqa: F821 (provided by Jupyter Server when it loads this file)

if os.environ.get("LMKIT_ROLE") != "instructor":
    c.ServerApp.jpserver_extensions = {
        "nbgrader.server_extensions.formgrader": False,  # grading views and the gradebook: instructors only
        "nbgrader.server_extensions.course_list": False,  # lists the courses a user teaches
    }
