"""nbgrader configuration for llm-quant-course.

solutions/<id>/<id>.ipynb is nbgrader's source (the only hand-edited notebook);
notebooks/<id>/ is its release, regenerated with `quant-course release` and committed.

Writable state (gradebook, exchange) defaults to .nbgrader/ in this folder and can be
moved with environment variables, for a shared grading server or a scratch test run:

    QUANT_COURSE_ROOT          course folder (default: this folder)
    QUANT_COURSE_GRADEBOOK     database URL  (default: sqlite:///.nbgrader/gradebook.db here)
    QUANT_COURSE_EXCHANGE      exchange root (default: .nbgrader/exchange here)
    QUANT_COURSE_CELL_TIMEOUT  seconds one cell may run when grading (default 900)
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

here = Path(__file__).resolve().parent
state = here / ".nbgrader"

c.CourseDirectory.course_id = "llm-quant-course"
c.CourseDirectory.root = os.environ.get("QUANT_COURSE_ROOT", str(here))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = os.environ.get("QUANT_COURSE_GRADEBOOK", f"sqlite:///{state / 'gradebook.db'}")
c.Exchange.root = os.environ.get("QUANT_COURSE_EXCHANGE", str(state / "exchange"))

# Timeouts are read from Execute (ExecutePreprocessor.timeout is ignored by nbgrader 0.9).
c.Execute.timeout = int(os.environ.get("QUANT_COURSE_CELL_TIMEOUT", "900"))
# A learner who deletes a graded test cell gets it back when graded, instead of escaping it.
c.OverwriteCells.add_missing_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

if not os.environ.get("QUANT_COURSE_GRADEBOOK") or not os.environ.get("QUANT_COURSE_EXCHANGE"):
    state.mkdir(exist_ok=True)
