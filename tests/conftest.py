"""Suite-wide test policy: which tests are slow.

Most slow tests carry ``pytestmark = pytest.mark.slow`` in their module (notebooks executed, a
course graded end to end, the wheel built). The tests below are marked here because they start a
sandboxed kernel or a pool of worker processes (seconds each, more on a busy machine) in modules
whose other tests are quick. ``pytest -m "not slow"`` (``make test-quick``) leaves all of them
out; ``make test`` runs everything.
"""

import pytest

SLOW_TESTS = {
    "test_sandbox.py": {
        "test_kernel_runs_in_a_private_copy_with_its_own_env",
        "test_nbclient_cleanup_kc_shuts_the_sandbox_down",
        "test_works_in_a_worker_forked_after_kernels_ran_here",
        "test_kernel_cannot_read_course_gradebook_or_other_students",
        "test_kernel_imports_the_student_edition_only",
        "test_writes_outside_the_work_dir_fail",
        "test_no_network",
        "test_memory_bomb_raises_memory_error_and_kernel_lives_on",
        "test_cgroup_is_used_wherever_the_machine_allows_it",
        "test_interrupt_reaches_the_kernel_on_timeout",
        "test_loop_ignoring_sigint_is_stopped_by_the_timeout",
        "test_killing_things_inside_harms_nobody_outside",
        "test_huge_output_message_is_refused_and_reported_as_a_dead_kernel",
        "test_disk_fill_stops_at_the_cap",
        "test_launcher_reports_startup_failure",
    },
    "test_grading_units.py": {"test_run_pool_survives_a_task_that_kills_its_worker"},
}


def pytest_collection_modifyitems(config, items):
    """Add the ``slow`` marker to the tests listed in SLOW_TESTS."""
    for item in items:
        names = SLOW_TESTS.get(item.path.name, ())
        if getattr(item, "originalname", item.name) in names:
            item.add_marker(pytest.mark.slow)
