"""LMS bulk downloads in (Moodle, Canvas), grade-import files out, checked against their layouts.

The archives are built in the layouts the LMSs' own code writes (see autograder/lms.py for the
sources); the import files are read back the way Moodle's and Canvas's importers read them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import autograder_archives as archives
import pytest

from autograder import results
from autograder.collect import collect, placeholder_id
from autograder.course import REPO_ROOT, AutograderError, submitted_dir, write_config
from autograder.lms import (
    CANVAS_STUDENT_COLUMNS,
    MOODLE_COLUMNS,
    parse_download_name,
    read_roster,
    write_lms_grades,
)

ASSIGNMENT = "exercise_08"
ROSTER_HEADER = ["lms_id", "student_id", "full_name", "email", "section"]


def _new_course(folder: Path) -> Path:
    """A course as ``release`` leaves it, without the release (collect needs a course)."""
    folder.mkdir(parents=True)
    write_config(folder)
    return folder


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return {"root": tmp_path, "inbox": inbox, "course": _new_course(tmp_path / "course")}


def _landed(course: Path, student: str) -> str:
    """What the collected networks.py of ``student`` says (archives.hand_in's marker)."""
    return (submitted_dir(course, ASSIGNMENT, student) / "exercise_code/networks.py").read_text()


def _by_id(outcomes) -> dict:
    return {o.student_id: o for o in outcomes}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- reading the download names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "member", "expected"),
    [
        (
            "moodle",
            "Jane Doe_1001_assignsubmission_file_exercise_08.zip",
            ("1001", "exercise_08.zip"),
        ),
        (
            "moodle",
            "Jane Doe_1001_assignsubmission_file_my_hw_2_final.zip",
            ("1001", "my_hw_2_final.zip"),
        ),
        (
            "moodle",
            "Jane Doe_1001_assignsubmission_onlinetext_onlinetext.html",
            ("1001", "onlinetext.html"),
        ),
        (
            "moodle",
            "Participant_7654321_assignsubmission_file_exercise_08.zip",
            ("7654321", "exercise_08.zip"),
        ),
        (
            "moodle",
            "Jane Doe_1001_assignsubmission_file/exercise_08.zip",
            ("1001", "exercise_08.zip"),
        ),
        (
            "moodle",
            "Jane Doe_1001_assignsubmission_file_/sub/exercise_08.zip",
            ("1001", "exercise_08.zip"),
        ),
        ("moodle", "Ren\u00e9 O'Neil_12_assignsubmission_file_a.zip", ("12", "a.zip")),
        ("moodle", "exercise_08.zip", None),
        ("moodle", "Jane Doe_x1_assignsubmission_file_a.zip", None),
        ("canvas", "doejane_1001_5551_exercise_08.zip", ("1001", "exercise_08.zip")),
        ("canvas", "roebob_LATE_1002_5552_exercise_08-1.zip", ("1002", "exercise_08-1.zip")),
        ("canvas", "o_brienpat_1003_5553_hw_1_2.zip", ("1003", "hw_1_2.zip")),
        ("canvas", "m\u00fcllerj\u00fcrgen_1004_5554_a.zip", ("1004", "a.zip")),
        ("canvas", "smithann_1005_text.html", ("1005", "text.html")),
        ("canvas", "LATE_anon_x7Yq2_5555_exercise_08.zip", ("anon_x7Yq2", "exercise_08.zip")),
        ("canvas", "anon_12345_5556_2024_report.zip", ("anon_12345", "2024_report.zip")),
        ("canvas", "exercise_08.zip", None),
        ("canvas", "folder/doejane_1001_5551_a.zip", None),
    ],
)
def test_download_names_give_the_lms_id_and_the_students_own_file_name(preset, member, expected):
    parsed = parse_download_name(preset, member)
    assert (None if parsed is None else (parsed.lms_id, parsed.file_name)) == expected


def test_canvas_late_marker_is_read():
    assert parse_download_name("canvas", "roebob_LATE_1002_5552_a.zip").late
    assert not parse_download_name("canvas", "doejane_1001_5551_a.zip").late


# --- the roster -------------------------------------------------------------------------------


def test_roster_reads_a_header_row_in_any_order_a_bom_and_moodle_identifiers(tmp_path):
    path = archives.write_roster(
        tmp_path / "roster.csv",
        [["s1001", "Participant 1001", "Jane Doe"], ["s1002", "1002", "Bob\x1b[31m Roe"]],
        header=["Student ID", "LMS id", "Full name"],
    )
    roster = read_roster(path)
    assert set(roster) == {"1001", "1002"}
    assert roster["1001"].student_id == "s1001" and roster["1001"].full_name == "Jane Doe"
    assert roster["1002"].full_name == "Bob Roe"


def test_roster_without_a_header_reads_the_documented_column_order(tmp_path):
    path = archives.write_roster(tmp_path / "r.csv", [["1001", "s1001", "Jane Doe", "j@x.org"]])
    entry = read_roster(path)["1001"]
    assert (entry.student_id, entry.full_name, entry.email) == ("s1001", "Jane Doe", "j@x.org")


@pytest.mark.parametrize(
    ("rows", "phrase"),
    [
        ([], "has no students"),
        ([["1001", "a"], ["1001", "b"]], "two student ids (rows 2 and 3)"),
        ([["", "a"]], "Row 2 of the roster"),
    ],
)
def test_a_broken_roster_stops_with_one_sentence(tmp_path, rows, phrase):
    path = archives.write_roster(tmp_path / "r.csv", rows, header=["lms_id", "student_id"])
    with pytest.raises(AutograderError, match=re.escape(phrase)):
        read_roster(path)
    with pytest.raises(AutograderError, match="does not exist"):
        read_roster(tmp_path / "missing.csv")


# --- Moodle bulk downloads --------------------------------------------------------------------


def _moodle_class(inbox: Path, layout: str) -> tuple[Path, Path]:
    """Five Moodle participants and a roster: the cases an instructor meets."""
    students = [
        (
            "Jane Doe",
            1001,
            {"exercise_08.zip": archives.hand_in("jane"), "onlinetext.html": b"<p>see zip</p>"},
        ),
        ("Bob Roe", 1002, {"my hand-in.zip": archives.hand_in("bob")}),
        ("Carl Poe", 1003, {"onlinetext.html": b"<p>I forgot the zip</p>"}),
        ("Dana Lee", 1004, {"exercise_08.zip": archives.hand_in("dana")}),
        ("Eve Ray", 1005, {"exercise_08.zip": archives.hand_in("eve")}),
    ]
    download = archives.moodle_download(inbox, students, layout)
    roster = archives.write_roster(
        inbox.parent / "roster.csv",
        [
            ["1001", "s1001", "Jane Doe", "jane@uni.example", ""],
            ["Participant 1002", "bob.roe", "Bob Roe", "bob@uni.example", ""],
            ["1003", "carl", "Carl Poe", "", ""],
            ["1005", "../x", "Eve Ray", "", ""],
        ],
        header=ROSTER_HEADER,
    )
    return download, roster


@pytest.mark.parametrize("layout", ["flat", "folders", "folders_3x"])
def test_moodle_download_lands_each_zip_under_the_roster_id(workspace, layout, capsys):
    root, inbox, course = workspace["root"], workspace["inbox"], workspace["course"]
    download, roster = _moodle_class(inbox, layout)
    before = _tree(root)

    outcomes = _by_id(collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster))

    assert outcomes["s1001"].status == outcomes["bob.roe"].status == "collected"
    assert _landed(course, "s1001") == "# jane\n" and _landed(course, "bob.roe") == "# bob\n"
    carl = outcomes["carl"]
    assert carl.status == "rejected" and carl.message == (
        "onlinetext.html is not a zip; hand in the zip that create_submission() writes."
    )
    dana_name = (
        "Dana Lee_1004_assignsubmission_file_exercise_08.zip"
        if layout == "flat"
        else f"Dana Lee_1004_assignsubmission_file{'_' if layout == 'folders_3x' else ''}"
        "/exercise_08.zip"
    )
    dana = outcomes[placeholder_id(dana_name)]
    assert dana.status == "rejected"
    assert "Moodle participant id 1004, which is not in the roster" in dana.message
    assert "add 1004 with the student's id to the roster and collect again." in dana.message
    eve = next(o for o in outcomes.values() if "1005" in o.message)
    assert (
        eve.student_id.startswith("unnamed-") and "'../x', not a usable student id" in eve.message
    )
    for outcome in (carl, dana, eve):
        record = results.read_result(course, ASSIGNMENT, outcome.student_id)
        assert record["status"] == "rejected" and record["message"] == outcome.message
    assert len(outcomes) == 5
    out = capsys.readouterr().out
    assert "s1001: skipped" in out and "onlinetext.html, which is not a zip." in out
    assert _tree(root) - before <= {p for p in _tree(root) if p.startswith("course")}
    assert not (root / "x").exists() and not (course / "submitted" / ".." / "x").exists()
    assert not (course / ".staging").exists()


def test_moodle_unpacked_folder_gives_the_same_as_its_zip(workspace):
    root, inbox, course = workspace["root"], workspace["inbox"], workspace["course"]
    download, roster = _moodle_class(inbox, "folders")
    unpacked = root / "unpacked"
    with zipfile.ZipFile(download) as archive:
        archive.extractall(unpacked)
    from_zip = collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster)
    from_folder = collect(
        _new_course(root / "course2"), ASSIGNMENT, [unpacked], lms="moodle", roster=roster
    )
    assert [(o.student_id, o.status, o.message) for o in from_zip] == [
        (o.student_id, o.status, o.message) for o in from_folder
    ]
    again = collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster)
    assert {o.status for o in again} == {"unchanged"}


def test_a_roster_fixed_after_collect_turns_the_rejected_row_into_the_students(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    download, roster = _moodle_class(inbox, "flat")
    collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster)
    dana = placeholder_id("Dana Lee_1004_assignsubmission_file_exercise_08.zip")
    assert results.read_result(course, ASSIGNMENT, dana)["status"] == "rejected"

    with roster.open("a", encoding="utf-8") as handle:
        handle.write('"1004","dana","Dana Lee","",""\r\n')
    outcomes = _by_id(collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster))

    assert outcomes["dana"].status == "collected" and _landed(course, "dana") == "# dana\n"
    assert results.read_result(course, ASSIGNMENT, dana) is None
    assert dana not in outcomes


def test_the_other_assignments_zip_in_a_moodle_submission_never_competes(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    students = [
        (
            "Jane Doe",
            1001,
            {
                "exercise_08.zip": archives.hand_in("jane"),
                "exercise_08_optional.zip": archives.zip_bytes(archives.OPTIONAL_FILES),
                "upload.zip": archives.zip_bytes(archives.OPTIONAL_FILES),
            },
        ),
    ]
    download = archives.moodle_download(inbox, students, "flat")
    roster = archives.write_roster(inbox.parent / "r.csv", [["1001", "s1001"]])

    (outcome,) = collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster)

    assert outcome.status == "collected" and _landed(course, "s1001") == "# jane\n"
    out = capsys.readouterr().out
    assert "its name says it is for exercise_08_optional, not exercise_08." in out
    assert "it holds regularization.ipynb, the notebook of exercise_08_optional" in out
    assert "newest" not in out


def test_an_unsafe_bulk_download_stops_collect_and_writes_nothing(workspace):
    root, inbox, course = workspace["root"], workspace["inbox"], workspace["course"]
    roster = archives.write_roster(root / "r.csv", [["1001", "s1001"]])
    good = {"Jane Doe_1001_assignsubmission_file_exercise_08.zip": archives.hand_in("jane")}
    cases = {
        "unsafe path": {**good, "../../escaped_by_bulk.zip": b"x"},
        "unsafe path ": {**good, str(root / "escaped_absolute.zip"): b"x"},
    }
    for phrase, members in cases.items():
        download = archives.write_download(inbox / "bulk.zip", members)
        before = _tree(root)
        with pytest.raises(AutograderError, match=phrase.strip()):
            collect(course, ASSIGNMENT, [download], lms="moodle", roster=roster)
        assert _tree(root) - before <= {"course", "course/.grade.lock"}
    link = archives.write_download(inbox / "bulk.zip", good)
    with zipfile.ZipFile(link, "a") as archive:
        info = zipfile.ZipInfo("Bob Roe_1002_assignsubmission_file_exercise_08.zip")
        info.create_system, info.external_attr = 3, (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(AutograderError, match="as a link, special, encrypted or repeated entry"):
        collect(course, ASSIGNMENT, [link], lms="moodle", roster=roster)
    (inbox / "notes.txt").write_text("not a download")
    with pytest.raises(AutograderError, match="neither a folder nor a zip"):
        collect(course, ASSIGNMENT, [inbox / "notes.txt"], lms="moodle", roster=roster)
    assert not list(root.parent.glob("escaped_*")) and not (root / "escaped_absolute.zip").exists()
    assert results.read_results(course, ASSIGNMENT) == []


def test_a_bulk_download_beyond_the_limits_stops_collect(workspace):
    from autograder.collect import Limits

    inbox, course = workspace["inbox"], workspace["course"]
    download, roster = _moodle_class(inbox, "flat")
    with pytest.raises(AutograderError, match="more than the limit of 3"):
        collect(
            course,
            ASSIGNMENT,
            [download],
            lms="moodle",
            roster=roster,
            limits=Limits(max_bulk_entries=3),
        )
    with pytest.raises(AutograderError, match="unpacks to more than"):
        collect(
            course,
            ASSIGNMENT,
            [download],
            lms="moodle",
            roster=roster,
            limits=Limits(max_bulk_bytes=1000),
        )


# --- Canvas bulk downloads --------------------------------------------------------------------


def test_canvas_download_lands_each_zip_under_the_roster_id(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    download = archives.canvas_download(
        inbox,
        {
            "doejane_1001_5551_exercise_08.zip": archives.hand_in("jane"),
            "roebob_LATE_1002_5552_exercise_08.zip": archives.hand_in("bob"),
            "smithann_1003_text.html": b"<p>no zip</p>",
            "LATE_anon_x7Yq2_5553_exercise_08.zip": archives.hand_in("anonymous"),
            "doejane_1001_5554_exercise_08_optional.zip": archives.zip_bytes(
                archives.OPTIONAL_FILES
            ),
            "leekim_1004_5555_exercise_08.zip": archives.hand_in("kim"),
        },
    )
    roster = archives.write_roster(
        inbox.parent / "roster.csv",
        [
            ["1001", "jdoe", "Doe, Jane"],
            ["1002", "broe", "Roe, Bob"],
            ["1003", "asmith", ""],
            ["anon_x7Yq2", "anon1", ""],
        ],
        header=["lms_id", "student_id", "full_name"],
    )

    outcomes = _by_id(collect(course, ASSIGNMENT, [download], lms="canvas", roster=roster))

    assert {k: o.status for k, o in outcomes.items() if not k.startswith("unnamed-")} == {
        "jdoe": "collected",
        "broe": "collected",
        "anon1": "collected",
        "asmith": "rejected",
    }
    assert _landed(course, "jdoe") == "# jane\n" and _landed(course, "broe") == "# bob\n"
    assert "text.html is not a zip" in outcomes["asmith"].message
    kim = outcomes[placeholder_id("leekim_1004_5555_exercise_08.zip")]
    assert "Canvas user id 1004, which is not in the roster" in kim.message
    assert "skipped doejane_1001_5554_exercise_08_optional.zip: its name says" in (
        capsys.readouterr().out
    )


# --- grade-import files -----------------------------------------------------------------------

ROWS = [
    {"student_id": "s1001", "status": "graded", "total": 100.0, "total_max": 100.0, "message": ""},
    {
        "student_id": "bob.roe",
        "status": "graded",
        "total": 62.5,
        "total_max": 100.0,
        "message": "The hidden accuracy, 41.0%, is below the pass mark\x1b[31m of 55%.\nRetrain.",
    },
    {
        "student_id": "carl",
        "status": "rejected",
        "total": 0.0,
        "total_max": 100.0,
        "message": "onlinetext.html is not a zip; hand in the zip that create_submission() writes.",
    },
    {
        "student_id": "dana",
        "status": "not graded",
        "total": None,
        "total_max": 100.0,
        "message": "This submission has not been graded yet; run grade, then report.",
    },
    {
        "student_id": "unnamed-0123456789",
        "status": "rejected",
        "total": 0.0,
        "total_max": 100.0,
        "message": "x.zip has no usable student id in its name.",
    },
]


@pytest.fixture
def graded_course(tmp_path: Path) -> dict[str, Path]:
    course = _new_course(tmp_path / "course")
    for row in ROWS:
        if row["status"] != "not graded":  # report's row for a submission without a record
            results.write_result(course, ASSIGNMENT, row["student_id"], row)
    roster = archives.write_roster(
        tmp_path / "roster.csv",
        [
            ["1001", "s1001", "Jane Doe", "jane@uni.example", "A", "", ""],
            ["1002", "bob.roe", "Roe, Bob", "bob@uni.example", "B", "SIS-2", "broe"],
            ["1003", "carl", "Carl Poe", "", "A", "", ""],
            ["1004", "dana", "Dana Lee", "", "A", "", ""],
        ],
        header=[*ROSTER_HEADER, "sis_user_id", "sis_login_id"],
    )
    return {"course": course, "roster": roster}


def test_moodle_worksheet_is_what_moodles_importer_reads(graded_course, capsys):
    course, roster = graded_course["course"], graded_course["roster"]

    path = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "moodle")

    assert path == course / "grades" / "exercise_08-moodle-worksheet.csv"
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark, as Moodle's download"
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0] == MOODLE_COLUMNS
    assert table[0] == [
        "Identifier",
        "Full name",
        "Email address",
        "Status",
        "Grade",
        "Maximum Grade",
        "Grade can be changed",
        "Last modified (submission)",
        "Last modified (grade)",
        "Feedback comments",
    ]
    # importgradeslib.php: the three columns it needs, the id after "Participant ".
    idx = {
        name: table[0].index(name)
        for name in ("Identifier", "Grade", "Last modified (grade)", "Feedback comments")
    }
    rows = {r[idx["Identifier"]][len("Participant ") :]: r for r in table[1:]}
    assert set(rows) == {"1001", "1002", "1003"}, "not graded and not in roster are left out"
    assert all(len(r) == len(MOODLE_COLUMNS) for r in table)
    assert [rows[i][idx["Grade"]] for i in ("1001", "1002", "1003")] == ["100.00", "62.50", "0.00"]
    assert rows["1001"][idx["Feedback comments"]] == "Full marks."
    assert rows["1002"][idx["Feedback comments"]] == (
        "The hidden accuracy, 41.0%, is below the pass mark of 55%. Retrain."
    )
    assert rows["1002"][1:3] == ["Roe, Bob", "bob@uni.example"]
    graded = datetime.fromisoformat(rows["1002"][idx["Last modified (grade)"]])
    decided = datetime.fromisoformat(results.read_result(course, ASSIGNMENT, "bob.roe")["finished"])
    assert graded == decided.replace(microsecond=0)
    assert all(c.isprintable() for r in table for cell in r for c in cell)
    out = capsys.readouterr().out
    assert "not in the roster" in out and "unnamed-0123456789" in out
    assert "not graded yet: dana" in out


def test_canvas_gradebook_csv_is_what_canvas_importer_reads(graded_course):
    course, roster = graded_course["course"], graded_course["roster"]

    path = write_lms_grades(
        course, ASSIGNMENT, ROWS, roster, "canvas", canvas_column="Exercise 08 (4711)"
    )

    assert path == course / "grades" / "exercise_08-canvas-gradebook.csv"
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf"), "no byte-order mark, as Canvas's default export"
    table = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header, points, *students = table
    assert header == [*CANVAS_STUDENT_COLUMNS, "Exercise 08 (4711)"]
    # gradebook_importer.rb: Student, ID, then SIS User ID and SIS Login ID, last one Section.
    assert "Student" in header[0] and "ID" in header[1]
    assert re.match(r"SIS\s+User\s+ID", header[2]) and re.match(r"SIS\s+Login\s+ID", header[3])
    assert "Section" in header[4]
    assert re.fullmatch(r"(.*)\s\((\d+)\)", header[5]).groups() == ("Exercise 08", "4711")
    assert "Points Possible" in points[0] and points[5] == "100.00"
    by_id = {row[1]: row for row in students}
    assert set(by_id) == {"1001", "1002", "1003"}
    assert by_id["1002"] == ["Roe, Bob", "1002", "SIS-2", "broe", "B", "62.50"]
    comments = json.loads((course / "grades" / "exercise_08-canvas-comments.json").read_text())
    assert comments == {
        "grade_data": {
            "1001": {"text_comment": "Full marks."},
            "1002": {
                "text_comment": "The hidden accuracy, 41.0%, is below the pass mark of 55%. "
                "Retrain."
            },
            "1003": {"text_comment": ROWS[2]["message"]},
        }
    }


def test_canvas_column_defaults_to_the_assignment_name(graded_course):
    course, roster = graded_course["course"], graded_course["roster"]
    path = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "canvas")
    assert next(csv.reader(path.open(encoding="utf-8")))[-1] == "exercise_08"


def test_writing_again_gives_the_same_bytes_and_leaves_no_temporary_files(graded_course):
    course, roster = graded_course["course"], graded_course["roster"]
    first = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "moodle").read_bytes()
    second = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "moodle").read_bytes()
    assert first == second
    assert sorted(p.name for p in (course / "grades").iterdir()) == [
        "exercise_08-moodle-worksheet.csv"
    ]


def test_a_student_with_two_lms_ids_stops_the_export(graded_course):
    course, roster = graded_course["course"], graded_course["roster"]
    with roster.open("a", encoding="utf-8") as handle:
        handle.write('"2001","s1001","Jane Doe","",""\r\n')
    with pytest.raises(AutograderError, match="gives s1001 several LMS ids"):
        write_lms_grades(course, ASSIGNMENT, ROWS, roster, "moodle")
    with pytest.raises(AutograderError, match="Unknown LMS"):
        write_lms_grades(course, ASSIGNMENT, ROWS, roster, "blackboard")


# --- the command line -------------------------------------------------------------------------


def test_the_command_line_collects_a_canvas_download(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    download = archives.canvas_download(
        inbox, {"doejane_1001_5551_exercise_08.zip": archives.hand_in("jane")}
    )
    roster = archives.write_roster(inbox.parent / "roster.csv", [["1001", "jdoe"]])
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course), "collect"]
    done = subprocess.run(
        [*command, ASSIGNMENT, str(download), "--from", "canvas", "--roster", str(roster)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "jdoe: collected doejane_1001_5551_exercise_08.zip" in done.stdout
    both = subprocess.run(
        [
            *command,
            ASSIGNMENT,
            str(download),
            "--from",
            "canvas",
            "--roster",
            str(roster),
            "--id-pattern",
            "x",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert both.returncode == 1 and "--id-pattern does not apply" in both.stderr


def test_roster_students_without_an_upload_get_a_row_saying_no_submission(graded_course, capsys):
    """Every student of the roster is accounted for: one who handed in nothing gets 0 points and
    a comment saying so (the LMS would otherwise keep an empty grade)."""
    course, roster = graded_course["course"], graded_course["roster"]
    with roster.open("a", encoding="utf-8") as handle:
        handle.write('"1005","erin","Erin Fox","erin@uni.example","A","",""\r\n')

    moodle = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "moodle")
    canvas = write_lms_grades(course, ASSIGNMENT, ROWS, roster, "canvas")

    sheet = list(csv.DictReader(io.StringIO(moodle.read_text(encoding="utf-8-sig"))))
    erin = next(r for r in sheet if r["Identifier"] == "Participant 1005")
    assert (erin["Status"], erin["Grade"], erin["Maximum Grade"]) == (
        "no submission",
        "0.00",
        "100.00",
    )
    assert erin["Feedback comments"].startswith("No submission of exercise_08 was collected")
    table = list(csv.reader(canvas.open(encoding="utf-8")))
    assert next(r for r in table if r[1] == "1005")[-1] == "0.00"
    comments = json.loads((course / "grades" / "exercise_08-canvas-comments.json").read_text())
    assert comments["grade_data"]["1005"]["text_comment"] == erin["Feedback comments"]
    assert "roster students with no submission: erin." in capsys.readouterr().out
