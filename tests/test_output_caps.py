"""Output caps of the grading run (issue 13, item 5): the whole notebook's kept output is capped,
display updates included, and records in test cells have a budget of their own."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cs231n_grading.execute import CappedClient, run_notebook
from cs231n_grading.judge import cell_records
from cs231n_lib.checks import RECORD_MIME, encode_value

TEST_META = {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "t",
                          "points": 1, "schema_version": 3}}
NOTEBOOK_NOTE = "the notebook's output is over"


def msg(msg_type, content, parent="p"):
    """An iopub message as nbclient receives it."""
    return {"msg_type": msg_type, "header": {"msg_type": msg_type}, "content": content,
            "parent_header": {"msg_id": parent}, "metadata": {}}


def display(text, display_id=None, update=False):
    """A display_data (or update_display_data) message showing ``text``."""
    content = {"data": {"text/plain": text}, "metadata": {}}
    if display_id:
        content["transient"] = {"display_id": display_id}
    return msg("update_display_data" if update else "display_data", content)


def record_msg(check_id, value):
    """The display message record() sends."""
    payload = {"id": check_id, "kind": "equal", "rtol": 0.0, "atol": 0.0, "bound": None,
               "value": encode_value(value)}
    return msg("display_data", {"data": {RECORD_MIME: payload, "text/plain": "[recorded]"},
                                "metadata": {}})


def client_for(cells, **caps):
    """A CappedClient (no kernel) over a notebook of ``cells``, every budget started."""
    nb = new_notebook(cells=cells)
    client = CappedClient(nb)
    client.clear_before_next_output = False  # as execute_cell sets it
    for key, value in caps.items():
        setattr(client, key, value)
    for i in range(len(cells)):
        client.reset_budget(i)
    return nb, client


def feed(client, nb, index, message):
    client.process_message(message, nb.cells[index], index)


def notebook_bytes(nb):
    return len(nbformat.writes(nb))


def texts(cell):
    return [o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]


def test_a_display_update_that_would_amplify_past_the_notebook_cap_is_dropped_with_a_note():
    nb, client = client_for([new_code_cell("") for _ in range(11)],
                            max_notebook_output_bytes=1_000_000)
    for i in range(10):
        feed(client, nb, i, display("small", display_id="x"))
    feed(client, nb, 10, display("u" * 300_000, display_id="x", update=True))  # 10 x 300 KB
    assert notebook_bytes(nb) < 1_000_000
    assert all(texts(nb.cells[i]) == ["small"] for i in range(10))
    assert any(NOTEBOOK_NOTE in t for t in texts(nb.cells[10]))
    feed(client, nb, 10, display("update", display_id="x", update=True))  # small ones still apply
    assert all(texts(nb.cells[i]) == ["update"] for i in range(10))


def test_repeated_displays_with_one_id_are_counted_after_every_update():
    nb, client = client_for([new_code_cell("") for _ in range(20)],
                            max_notebook_output_bytes=1_000_000)
    for i in range(20):  # each new display rewrites all earlier ones with its own data
        feed(client, nb, i, display("d" * 60_000 + str(i), display_id="x"))
    assert notebook_bytes(nb) < 1_000_000
    assert any(NOTEBOOK_NOTE in t for c in nb.cells for t in texts(c))


def test_cleared_output_no_longer_counts_and_the_cell_cap_still_holds():
    nb, client = client_for([new_code_cell(""), new_code_cell("")],
                            max_notebook_output_bytes=300_000, max_output_bytes=2_000_000)
    for _ in range(5):  # a progress display: 200 KB shown at a time, cleared before the next
        feed(client, nb, 0, display("p" * 200_000))
        feed(client, nb, 0, msg("clear_output", {"wait": False}))
    feed(client, nb, 1, display("q" * 200_000))
    assert texts(nb.cells[1]) == ["q" * 200_000]  # the cleared 1 MB left room for it
    for _ in range(20):
        feed(client, nb, 0, display("p" * 200_000))
        feed(client, nb, 0, msg("clear_output", {"wait": True}))
    assert any("output over 2000000 bytes" in t for t in texts(nb.cells[0]))


def test_records_keep_their_own_budget_and_display_updates_never_touch_them():
    nb, client = client_for([new_code_cell(""), new_code_cell("", metadata=TEST_META),
                             new_code_cell("")],
                            max_notebook_output_bytes=100_000, max_output_bytes=50_000)
    for _ in range(100):
        feed(client, nb, 0, display("f" * 10_000))
    feed(client, nb, 1, display("flood" * 100_000))
    feed(client, nb, 1, record_msg("a", 1))
    assert [r["value"] for r in cell_records(nb.cells[1])] == [1]
    feed(client, nb, 2, display("shown", display_id="r"))
    forged = record_msg("a", 2)
    forged["msg_type"] = forged["header"]["msg_type"] = "update_display_data"
    forged["content"]["transient"] = {"display_id": "r"}
    feed(client, nb, 2, forged)  # an update may not turn an output into a record
    assert texts(nb.cells[2])[0] == "shown" and not cell_records(nb.cells[2])
    assert any("would change a record" in t for t in texts(nb.cells[2]))


def test_a_record_flood_stops_at_the_cell_limit_and_spares_other_cells():
    from cs231n_grading.execute import MAX_RECORDS_PER_CELL

    nb, client = client_for([new_code_cell("", metadata=TEST_META), new_code_cell("")])
    for i in range(MAX_RECORDS_PER_CELL + 100):
        feed(client, nb, 0, record_msg(f"r{i}", i))
    feed(client, nb, 1, record_msg("b", 1))
    assert len(cell_records(nb.cells[0])) == MAX_RECORDS_PER_CELL
    assert any("too many or too large records" in t for t in texts(nb.cells[0]))
    assert [r["id"] for r in cell_records(nb.cells[1])] == ["b"]


def test_outputs_too_deep_to_keep_are_dropped_with_a_note():
    deep = []
    for _ in range(500):
        deep = [deep]
    nb, client = client_for([new_code_cell("")])
    feed(client, nb, 0, msg("display_data", {"data": {"application/json": {"x": deep}},
                                             "metadata": {}}))
    assert len(nb.cells[0].outputs) == 1 and "nested more than" in texts(nb.cells[0])[0]
    nbformat.writes(nb)


@pytest.mark.slow
def test_display_id_amplification_in_a_real_kernel_stays_under_the_notebook_cap(tmp_path):
    from cs231n_grading.kernels import make_kernel_manager

    lib = tmp_path / "lib"
    shutil.copytree(Path(__file__).parents[1] / "cs231n_lib", lib / "cs231n_lib")
    show = "from IPython.display import display\ndisplay('x', display_id='x')"
    cells = [new_code_cell(show) for _ in range(10)] + [
        new_code_cell("display('u' * 1_500_000, display_id='x', update=True)"),
        new_code_cell("from cs231n_lib.checks import record\nrecord('after', 1, kind='equal')",
                      metadata=TEST_META)]
    nb = new_notebook(cells=cells)
    run = run_notebook(nb, lambda: make_kernel_manager(tmp_path, library_dir=lib),
                       cwd=str(tmp_path), cell_timeout=60, notebook_timeout=120,
                       max_notebook_output_bytes=5_000_000)
    assert run.finished and not run.events
    assert notebook_bytes(nb) < 5_000_000  # without the cap: 10 x 1.5 MB
    assert any(NOTEBOOK_NOTE in t for t in texts(nb.cells[10]))
    assert [r["id"] for r in cell_records(nb.cells[11])] == ["after"]
