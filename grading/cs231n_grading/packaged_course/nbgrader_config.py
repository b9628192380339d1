"""Course configuration of an installed cs231n-course (a wheel, no checkout beside it).

``cs231n_grading.config.default_config`` picks this file when there is no checkout (no
``assignments/`` beside ``grading/``). It loads the course's own config (the checkout's
``grading/nbgrader_config.py``, copied to ``course/`` here by ``setup.py``) and points its
folders at what the wheel ships (``setup.py`` copies them in): the source notebooks in
``assignments/`` here, the library and its embedded data in the installed ``cs231n_lib``. The
course directory (release/, submitted/, gradebook.db, ...) is ``course/`` in the current folder,
never inside the installation; ``--course-dir DIR`` picks another one.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)
# by absolute path: relative ones resolve against the first loader's folder, e.g. the course's
load_subconfig(os.path.join(os.path.dirname(__file__), "course", "nbgrader_config.py"))  # noqa: F821

c.CourseGrading.assignments_dir = "assignments"
c.CourseGrading.course_dir = os.path.abspath("course")
c.CourseGrading.library = ["../../cs231n_lib"]
c.CourseGrading.data_dir = "../../cs231n_lib/data/datasets"
