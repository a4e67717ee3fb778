"""report: the grade table and the feedback pages, from records and from a real graded batch."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
import torch

from autograder import course, results
from autograder.collect import collect
from autograder.course import AutograderError
from autograder.report import grade_rows, report, summary_html
from autograder.results import COLUMNS

ASSIGNMENT = "exercise_08"
XSS = "<script>alert('owned')</script>"


def _record(status: str, tests: float, accuracy: float | None, hidden: float, message: str):
    details = [
        {"item": "autoencoder: test_encoder", "score": tests, "max": 50.0, "reason": message},
        {
            "item": "autoencoder: hidden_accuracy",
            "score": hidden,
            "max": 50.0,
            "reason": "" if hidden else "Your model's accuracy on the hidden test set is 0.43.",
        },
    ]
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
        "details": details,
    }


def _new_course(folder: Path) -> Path:
    """A course as ``release`` leaves it, without the release (report needs a course)."""
    folder.mkdir(parents=True)
    course.write_config(folder)
    return folder


@pytest.fixture
def course_with_records(tmp_path: Path) -> Path:
    course_dir = _new_course(tmp_path / "course")
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
    assert list(rows[0]) == [*COLUMNS, "flags"]
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
        "flags": "",
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
    assert "accuracy on the hidden test set is 0.43" in page
    rejected = course.feedback_dir(course_with_records, ASSIGNMENT, "bea") / "summary.html"
    assert "bea.zip is damaged." in rejected.read_text()


def test_rows_and_summary_work_for_records_without_details(course_with_records):
    rows = {r["student_id"]: r for r in grade_rows(course_with_records, ASSIGNMENT)}
    page = summary_html(course_with_records, ASSIGNMENT, {**rows["zoe"], "details": []}, [])
    assert "Full marks" in page


def test_an_assignment_without_a_hidden_check_shows_no_hidden_rows(tmp_path):
    course_dir = _new_course(tmp_path / "course")
    record = {
        **_record("graded", 18.0, None, 0.0, "dropout_forward raised ValueError."),
        "hidden_max": 0.0,
        "total_max": 20.0,
        "tests_max": 20.0,
    }
    record["details"] = record["details"][:1]
    course.submitted_dir(course_dir, "exercise_08_optional", "ann").mkdir(parents=True)
    results.write_result(course_dir, "exercise_08_optional", "ann", record)
    report(course_dir, "exercise_08_optional")
    page = (
        course.feedback_dir(course_dir, "exercise_08_optional", "ann") / "summary.html"
    ).read_text()
    assert "Hidden" not in page and "dropout_forward raised ValueError." in page


def test_control_characters_and_flags_reach_neither_the_table_nor_the_page(tmp_path, capsys):
    course_dir = _new_course(tmp_path / "course")
    course.submitted_dir(course_dir, ASSIGNMENT, "eve").mkdir(parents=True)
    message = "\x1b[31mred\x1b[0m \x07bell\u202e evil\r\nnext"
    record = {**_record("graded", 0.0, 0.9, 50.0, message), "flags": "notebook tests passed (x)"}
    results.write_result(course_dir, ASSIGNMENT, "eve", record)

    path = report(course_dir, ASSIGNMENT)

    text = path.read_text()
    assert "red bell evil next" in text and not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", text)
    page = (course.feedback_dir(course_dir, ASSIGNMENT, "eve") / "summary.html").read_text()
    assert "\x1b" not in page and "\u202e" not in page
    out = capsys.readouterr().out
    assert "Flagged eve: notebook tests passed (x)." in out and "\x1b" not in out


def test_report_writes_the_moodle_worksheet_from_the_roster(course_with_records, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("lms_id,student_id,full_name,email\n1001,zoe,Zoe Z,zoe@uni.example\n")
    report(course_with_records, ASSIGNMENT, lms="moodle", roster=roster)
    worksheet = course.grades_csv(course_with_records, ASSIGNMENT).parent / (
        f"{ASSIGNMENT}-moodle-worksheet.csv"
    )
    rows = list(csv.DictReader(worksheet.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["Identifier"], r["Grade"]) for r in rows] == [("Participant 1001", "100.00")]
    assert rows[0]["Feedback comments"] == "Full marks."


@pytest.fixture(scope="module")
def graded_standin(tmp_path_factory, prepared_data_dir):
    """The stand-in course after release, collect and grade (real nbgrader, the real grader)."""
    import corpus_behaviour as cb

    from autograder.exercise_modules import exercise_code_module
    from autograder.grade import GradeSettings, grade
    from autograder.release import release

    base = tmp_path_factory.mktemp("standin")
    base.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(course, "REPO_ROOT", base / "repo")
        cb.make_exercise(base / "repo")
        course_dir = base / "course"
        release(course_dir, [ASSIGNMENT], dist_dir=base / "dist")
        files = exercise_code_module("exercise_08", "mnist_files")
        raw = prepared_data_dir / "MNIST" / "raw"
        images = files.read_idx(raw / "train-images-idx3-ubyte")[:6000]
        labels = files.read_idx(raw / "train-labels-idx1-ubyte")[:6000]
        model = base / "good.pt2"
        network = torch.nn.Sequential(torch.nn.Flatten(), cb.robust_classifier(images, labels))
        cb._export(network, model, torch.rand(4, 1, 28, 28))
        good = cb.good_files(course_dir / "release" / ASSIGNMENT, model)
        inbox = base / "inbox"
        inbox.mkdir()
        cb.write_zip(good, inbox / "ref.zip")
        hostile = f"def answer():\n    raise ValueError({XSS!r})\n"
        cb.write_zip({**good, "exercise_code/answer.py": hostile.encode()}, inbox / "mallory.zip")
        (inbox / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
        collect(course_dir, ASSIGNMENT, [inbox])
        grade(course_dir, ASSIGNMENT, settings=GradeSettings(data_dir=prepared_data_dir))
        report(course_dir, ASSIGNMENT)
        yield course_dir


@pytest.mark.slow
def test_feedback_of_a_graded_batch_names_every_lost_point(graded_standin):
    course_dir = graded_standin
    rows = {
        r["student_id"]: r for r in csv.DictReader(open(course.grades_csv(course_dir, ASSIGNMENT)))
    }
    assert rows["ref"]["total"] == "100" and rows["mallory"]["tests_score"] == "0"
    assert rows["broken"]["status"] == "rejected" and "damaged" in rows["broken"]["message"]

    folder = course.feedback_dir(course_dir, ASSIGNMENT, "mallory")
    summary = (folder / "summary.html").read_text()
    assert "autoencoder: test_answer" in summary and "ValueError" in summary
    assert XSS not in summary
    notebook_page = (folder / "autoencoder.html").read_text()
    assert XSS not in notebook_page, "student text in the notebook feedback must be escaped"
    assert "Grader&#39;s verdict: 0 of 25 points" in notebook_page or (
        "Grader's verdict: 0 of 25 points" in notebook_page
    )
    assert (course.feedback_dir(course_dir, ASSIGNMENT, "broken") / "summary.html").exists()
    # nbgrader's page through nbgrader's own API, rendered with the course's template: every
    # graded cell named in the score list, nothing loaded from a CDN.
    assert "Test cell" not in notebook_page and "mathjax" not in notebook_page.lower()


@pytest.mark.slow
def test_report_after_regrading_is_identical(graded_standin, prepared_data_dir):
    from autograder.grade import GradeSettings, grade

    csv_path = course.grades_csv(graded_standin, ASSIGNMENT)
    before = csv_path.read_bytes()
    decided = results.read_result(graded_standin, ASSIGNMENT, "ref")["finished"]
    grade(graded_standin, ASSIGNMENT, settings=GradeSettings(data_dir=prepared_data_dir))
    report(graded_standin, ASSIGNMENT)
    assert csv_path.read_bytes() == before
    assert results.read_result(graded_standin, ASSIGNMENT, "ref")["finished"] == decided


def test_report_refuses_a_folder_that_is_not_a_course_and_writes_nothing(tmp_path):
    """A mistyped --course-dir must not give a 0-student table with exit status 0."""
    typo = tmp_path / "coures"
    with pytest.raises(AutograderError) as missing:
        report(typo, ASSIGNMENT)
    assert not typo.exists()
    other = tmp_path / "Documents"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(AutograderError) as not_a_course:
        report(other, ASSIGNMENT)
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]
    for error in (missing.value, not_a_course.value):
        text = str(error)
        assert "check --course-dir, or run release first" in text and text.count(". ") == 0
    assert f"{other} is not a course folder" in str(not_a_course.value)
    assert f"{typo} does not exist" in str(missing.value)


def test_report_says_when_no_submission_was_flagged(course_with_records, capsys):
    report(course_with_records, ASSIGNMENT)
    assert "No submission was flagged." in capsys.readouterr().out


def test_everything_report_writes_is_readable_like_nbgraders_own_pages(course_with_records):
    """summary.html was 0600 beside nbgrader's 0644 notebook page: every file report writes is
    created as any file of the instructor's (0666 less the umask), like nbgrader's pages."""
    report(course_with_records, ASSIGNMENT)
    umask = os.umask(0)
    os.umask(umask)
    written = [course.grades_csv(course_with_records, ASSIGNMENT)]
    written += (course_with_records / "feedback").rglob("*.html")
    assert len(written) > 4
    assert {str(p): os.stat(p).st_mode & 0o777 for p in written} == {
        str(p): 0o666 & ~umask for p in written
    }


def test_nbgraders_export_gets_names_from_the_roster_and_rejected_students_at_zero(
    course_with_records, tmp_path
):
    """nbgrader export listed only graded students, without names. After report with a roster
    the gradebook knows every student of the table (rejected ones at 0, as nbgrader exports a
    student without a submission), every roster student, and their names and emails."""
    import subprocess
    import sys

    from nbgrader.api import Gradebook

    course.ensure_tools_on_path()
    db = f"sqlite:///{course_with_records / 'gradebook.db'}"
    with Gradebook(db, course.COURSE_ID) as gb:
        gb.add_assignment(ASSIGNMENT)
    results.write_result(
        course_with_records,
        ASSIGNMENT,
        "unnamed-0123456789",
        _record("rejected", 0.0, None, 0.0, "x.zip has no usable student id."),
    )
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "lms_id,student_id,full_name,email\n"
        "1001,zoe,Zoe Zeta,zoe@uni.example\n"
        '1002,bea,"Roe, Bea",bea@uni.example\n'
        "1003,ivan,Ivan Ivanov,\n"
    )

    report(course_with_records, ASSIGNMENT, lms="moodle", roster=roster)

    export = tmp_path / "export.csv"
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--to", str(export)],
        cwd=course_with_records,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(export.open(newline=""))}
    assert set(rows) == {"adam", "bea", "ivan", "mia", "noah", "zoe"}
    assert (rows["zoe"]["first_name"], rows["zoe"]["last_name"]) == ("Zoe", "Zeta")
    assert (rows["bea"]["first_name"], rows["bea"]["last_name"]) == ("Bea", "Roe")
    assert rows["bea"]["email"] == "bea@uni.example" and rows["bea"]["score"] == "0.0"


def test_report_packs_each_students_feedback_into_one_zip_to_hand_back(course_with_records):
    """One zip per student (their summary page and notebook feedback) to attach in the LMS or
    send; written again, the same bytes."""
    import zipfile

    report(course_with_records, ASSIGNMENT)
    folder = course.grades_csv(course_with_records, ASSIGNMENT).parent / f"{ASSIGNMENT}-feedback"
    zips = sorted(p.name for p in folder.iterdir())
    assert zips == ["adam.zip", "bea.zip", "mia.zip", "noah.zip", "zoe.zip"]
    page = course.feedback_dir(course_with_records, ASSIGNMENT, "zoe") / "summary.html"
    with zipfile.ZipFile(folder / "zoe.zip") as archive:
        assert archive.namelist() == [f"{ASSIGNMENT}/summary.html"]
        assert archive.read(f"{ASSIGNMENT}/summary.html") == page.read_bytes()
    first = (folder / "zoe.zip").read_bytes()
    report(course_with_records, ASSIGNMENT)
    assert (folder / "zoe.zip").read_bytes() == first
