"""nbgrader configuration: solutions/ is the source, exercises/ the release.

Run nbgrader from the repository root (see README, "For instructors").
"""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "transformers-hands-on"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Grading must survive broken submissions: an endless cell is interrupted after
# 30 s (that test scores 0, grading goes on) and deleted test cells are put back.
c.Execute.timeout = 30
c.ExecutePreprocessor.timeout = 30
c.OverwriteCells.add_missing_cells = True
# Student notebooks execute in autograded/STUDENT/AID/; lmkit is importable
# because the course environment installs it.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
