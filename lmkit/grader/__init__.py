"""The sandboxed autograder behind ``nbgrader autograde`` (README, "How grading works").

Not taught in a chapter: the instructor's side of exercises 00-04.

- :mod:`lmkit.grader.execute`: the nbgrader step that splits a notebook between
  the grading kernel (instructor's cells) and the worker (the submission's cells);
- :mod:`lmkit.grader.session`: the grading kernel's side: stand-ins for the
  submission's functions, callbacks, time limits, readable tracebacks;
- :mod:`lmkit.grader.worker`: the submission's side, inside the sandbox;
- :mod:`lmkit.grader.sandbox`: bubblewrap, an unprivileged user and resource limits;
- :mod:`lmkit.grader.wire`: what crosses between the two, read back safely.
"""
