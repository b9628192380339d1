"""Course configuration: nbgrader's settings plus the grading layer's (``CourseGrading``).

This is a traitlets/nbgrader config file. ``cs231n-course`` loads it (``--course`` picks another
one, e.g. the fixture course's; ``--CourseGrading.<setting>=<value>`` overrides a setting for one
run); ``cs231n-course release`` writes ``<course>/nbgrader_config.py``
that loads this file and sets the course root, so ``cd course && nbgrader formgrader`` (or
``nbgrader export``) works on the same gradebook. Paths are relative to this file's folder.
"""

c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)

# --- nbgrader ------------------------------------------------------------------------------
c.CourseDirectory.course_id = "cs231n-cnn"
# <course>/source is a symlink to the assignments folder below, so nbgrader's source folder is
# the repository's assignments/ itself.
c.CourseDirectory.source_directory = "source"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Name the function, notebook and part in each released solution stub
# (grading/cs231n_grading/solution_stubs.py).
from cs231n_grading.solution_stubs import generate_assignment_preprocessors  # noqa: E402

c.GenerateAssignment.preprocessors = generate_assignment_preprocessors()

# --- grading layer (cs231n_grading/config.py: CourseGrading's traits, their types and defaults) ---
c.CourseGrading.assignments_dir = "../assignments"   # nbgrader source notebooks
c.CourseGrading.course_dir = "../course"             # release/, submitted/, gradebook.db, ...
c.CourseGrading.library = ["../cs231n_lib"]          # packages shipped as a student edition
c.CourseGrading.data_dir = "../datasets"             # read-only for kernels ($CS231N_DATA_DIR)
c.CourseGrading.cell_timeout = 300                   # seconds per cell
c.CourseGrading.notebook_timeout = 1200              # seconds per notebook (wall clock)
# Per-assignment overrides: {"06_training": {"cell": 600, "notebook": 1800}}
c.CourseGrading.timeouts = {"06_training": {"cell": 600, "notebook": 1800}}
c.CourseGrading.sandbox = True                       # bubblewrap isolation when available
c.CourseGrading.env = {"CS231N_GRADING": "1"}        # small training budget (cs231n_lib.budget)
