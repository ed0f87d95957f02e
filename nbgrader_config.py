"""nbgrader configuration: solutions/ is the source, exercises/ the release.

Run nbgrader from the repository root (see README, "For instructors").
"""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "transformers-hands-on"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Autograding runs each submission in a sandbox and judges its outputs outside it
# (lmkit.grader; README "How grading works"). Same steps as nbgrader's default,
# with SandboxedExecute in place of Execute.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades  # noqa: E402

from lmkit.grader.execute import SandboxedExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback: nbgrader's page, with long grading messages wrapped instead of scrolling sideways.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from lmkit.grader.execute import WrapOutputs  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, WrapOutputs]

# Grading must survive broken submissions: an endless cell is interrupted after
# 30 s (that test scores 0, grading goes on) and deleted test cells are put back.
c.Execute.timeout = 30
c.ExecutePreprocessor.timeout = 30
c.OverwriteCells.add_missing_cells = True
# Student notebooks execute in autograded/STUDENT/AID/; lmkit is importable
# because the course environment installs it.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
