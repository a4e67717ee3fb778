"""report: the grade table and the feedback pages, from records and from a real graded batch."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import autograder_standin as standin
import pytest

from autograder import course, results
from autograder.collect import collect
from autograder.report import grade_rows, report, summary_html
from autograder.results import COLUMNS

ASSIGNMENT = "exercise_08"
XSS = "<script>alert('owned')</script>"


def _record(status: str, tests: float, accuracy: float | None, hidden: float, message: str):
    return {
        "status": status,
        "tests_score": tests,
        "tests_max": 50.0,
        "hidden_accuracy": accuracy,
        "hidden_score": hidden,
        "hidden_max": 50.0,
        "total": tests + hidden,
        "total_max": 100.0,
        "message": message,
    }


@pytest.fixture
def course_with_records(tmp_path: Path) -> Path:
    course_dir = tmp_path / "course"
    for student in ("zoe", "adam", "mia", "noah"):
        course.submitted_dir(course_dir, ASSIGNMENT, student).mkdir(parents=True)
    results.write_result(course_dir, ASSIGNMENT, "zoe", _record("graded", 50.0, 0.91, 50.0, ""))
    results.write_result(
        course_dir, ASSIGNMENT, "adam", _record("graded", 20.0, 0.4312, 0.0, f"=cmd|{XSS}")
    )
    results.write_result(
        course_dir, ASSIGNMENT, "bea", _record("rejected", 0.0, None, 0.0, "bea.zip is damaged.")
    )
    results.write_result(course_dir, ASSIGNMENT, "old", _record("graded", 1.0, None, 0.0, "gone"))
    results.write_result(
        course_dir, ASSIGNMENT, "mia", _record("timeout", 0.0, None, 0.0, "Took too long.")
    )
    return course_dir


def test_csv_has_one_sorted_row_per_collected_student_including_rejected(course_with_records):
    path = report(course_with_records, ASSIGNMENT)

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == COLUMNS
    assert [r["student_id"] for r in rows] == ["adam", "bea", "mia", "noah", "zoe"]
    by_id = {r["student_id"]: r for r in rows}
    assert by_id["bea"]["status"] == "rejected" and by_id["bea"]["total_max"] == "100"
    assert by_id["noah"]["status"] == "not graded" and "run grade" in by_id["noah"]["message"]
    assert by_id["zoe"] == {
        "student_id": "zoe",
        "status": "graded",
        "tests_score": "50",
        "tests_max": "50",
        "hidden_accuracy": "0.91",
        "hidden_score": "50",
        "hidden_max": "50",
        "total": "100",
        "total_max": "100",
        "message": "",
    }
    assert by_id["adam"]["hidden_accuracy"] == "0.4312"
    assert by_id["adam"]["message"].startswith("'="), "a formula must not run in a spreadsheet"
    assert not list(path.parent.glob(".*.tmp"))


def test_report_twice_gives_identical_bytes(course_with_records):
    first = report(course_with_records, ASSIGNMENT).read_bytes()
    summary = course.feedback_dir(course_with_records, ASSIGNMENT, "adam") / "summary.html"
    first_page = summary.read_text()
    assert report(course_with_records, ASSIGNMENT).read_bytes() == first
    assert summary.read_text() == first_page


def test_summary_page_escapes_student_text_and_explains_the_hidden_points(course_with_records):
    report(course_with_records, ASSIGNMENT)
    page = (
        course.feedback_dir(course_with_records, ASSIGNMENT, "adam") / "summary.html"
    ).read_text()

    assert XSS not in page and "&lt;script&gt;" in page
    assert "43.12%" in page
    assert "below the pass mark of 55%" in page
    rejected = course.feedback_dir(course_with_records, ASSIGNMENT, "bea") / "summary.html"
    assert "bea.zip is damaged." in rejected.read_text()


def test_rows_and_summary_work_for_records_without_details(course_with_records):
    rows = {r["student_id"]: r for r in grade_rows(course_with_records, ASSIGNMENT)}
    page = summary_html(course_with_records, ASSIGNMENT, rows["zoe"], [], [])
    assert "Full marks" in page


def _standin_zip(path: Path, source: Path, module: str | None = None, extra_cell: str = "") -> Path:
    notebook = json.loads((source / "standin.ipynb").read_text())
    if extra_cell:
        notebook["cells"].insert(
            2,
            {
                "cell_type": "code",
                "id": "extra",
                "metadata": {},
                "source": extra_cell,
                "outputs": [],
                "execution_count": None,
            },
        )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("standin.ipynb", json.dumps(notebook))
        archive.writestr("exercise_code/__init__.py", "")
        archive.writestr("exercise_code/helpers.py", standin.HELPER)
        archive.writestr(
            "exercise_code/model.py", module or (source / "exercise_code/model.py").read_text()
        )
    return path


@pytest.fixture(scope="module")
def graded_standin(tmp_path_factory, prepared_data_dir):
    """A stand-in course after release, collect and grade (real nbgrader, B's grader)."""
    from autograder.grade import grade
    from autograder.release import release

    base = tmp_path_factory.mktemp("standin")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(course, "REPO_ROOT", base / "repo")
        patch.setenv("AUTOGRADER_DATA_DIR", str(prepared_data_dir))
        source = standin.make_exercise(base / "repo")
        course_dir = base / "course"
        release(course_dir, [ASSIGNMENT], dist_dir=base / "dist")
        inbox = base / "inbox"
        inbox.mkdir()
        _standin_zip(inbox / "ref.zip", source)
        hostile = f"def double(x):\n    raise ValueError({XSS!r})\n"
        display = f"from IPython.display import HTML, display\ndisplay(HTML({XSS!r}))"
        _standin_zip(inbox / "mallory.zip", source, module=hostile, extra_cell=display)
        warner = (
            "import warnings\n\ndef double(x):\n    warnings.warn('careful')\n    return 2 * x\n"
        )
        _standin_zip(inbox / "walt.zip", source, module=warner)
        (inbox / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
        collect(course_dir, ASSIGNMENT, [inbox])
        grade(course_dir, ASSIGNMENT)
        report(course_dir, ASSIGNMENT)
        yield course_dir


@pytest.mark.slow
def test_feedback_of_a_graded_batch_names_every_lost_point(graded_standin):
    course_dir = graded_standin
    rows = {
        r["student_id"]: r for r in csv.DictReader(open(course.grades_csv(course_dir, ASSIGNMENT)))
    }
    assert rows["ref"]["tests_score"] == "5" and rows["mallory"]["tests_score"] == "3"
    assert rows["broken"]["status"] == "rejected" and "damaged" in rows["broken"]["message"]

    folder = course.feedback_dir(course_dir, ASSIGNMENT, "mallory")
    summary = (folder / "summary.html").read_text()
    assert "standin: test_double" in summary and "ValueError" in summary
    assert XSS not in summary
    assert "hidden test accuracy" in summary and "classifier.pt2" in summary
    notebook_page = (folder / "standin.html").read_text()
    assert XSS not in notebook_page, "student HTML output must be sanitized"
    assert (course.feedback_dir(course_dir, ASSIGNMENT, "broken") / "summary.html").exists()


@pytest.mark.slow
def test_report_after_regrading_is_identical(graded_standin):
    from autograder.grade import grade

    csv_path = course.grades_csv(graded_standin, ASSIGNMENT)
    before = csv_path.read_bytes()
    mtime = os.stat(results.result_path(graded_standin, ASSIGNMENT, "ref")).st_mtime_ns
    grade(graded_standin, ASSIGNMENT)
    report(graded_standin, ASSIGNMENT)
    assert csv_path.read_bytes() == before
    assert os.stat(results.result_path(graded_standin, ASSIGNMENT, "ref")).st_mtime_ns == mtime


@pytest.mark.slow
def test_a_test_cell_failed_by_a_warning_on_stderr_is_explained(graded_standin):
    summary = course.feedback_dir(graded_standin, ASSIGNMENT, "walt") / "summary.html"
    text = summary.read_text()
    assert "writes to stderr" in text and "careful" in text
