"""collect: real zips in, nbgrader's submitted/ layout out; each bad archive ends in a clear row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import autograder_archives as archives
import pytest

from autograder import results
from autograder.collect import Limits, collect, student_id_from_name
from autograder.course import REPO_ROOT, AutograderError, submitted_dir

ASSIGNMENT = "exercise_08"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content (the comparison of 'nothing changed')."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return {"root": tmp_path, "inbox": inbox, "course": tmp_path / "course"}


def _by_id(outcomes) -> dict:
    return {o.student_id: o for o in outcomes}


def test_good_zips_land_in_nbgrader_layout_with_top_folders_and_junk_removed(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "alice.zip")
    archives.good(inbox, "bob_exercise08_final.zip", prefix="exercise_08/")
    archives.nested_top_folder(inbox, "dora_final.zip")
    archives.macosx_junk(inbox, "erin.zip")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert {k: o.status for k, o in outcomes.items()} == dict.fromkeys(
        ["alice", "bob", "dora", "erin"], "collected"
    )
    for student in outcomes:
        folder = submitted_dir(course, ASSIGNMENT, student)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == sorted([*archives.GOOD_FILES, "timestamp.txt"]), student
        assert (folder / "exercise_code/networks.py").read_text() == archives.GOOD_FILES[
            "exercise_code/networks.py"
        ]
    assert not list((course / ".staging").iterdir())


def test_every_bad_archive_is_rejected_with_one_clear_sentence_and_nothing_escapes(workspace):
    root, inbox, course = workspace["root"], workspace["inbox"], workspace["course"]
    escape_target = root / "escaped_by_absolute_path.py"
    builders = {
        "not a zip archive": archives.not_a_zip,
        "contains no files": archives.empty,
        "damaged or incomplete": archives.truncated,
        "leads outside the folder": archives.traversal,
        "absolute path": lambda f, name: archives.absolute(f, escape_target, name),
        "symbolic link": archives.symlink,
        "zip bombs": lambda f, name: archives.bomb(f, name, megabytes=50),
        "per file": archives.bomb,
        "more than the limit of 2,000": archives.many_files,
        "twice": archives.duplicate_entry,
        "password-protected": archives.encrypted_flag,
    }
    expected = {}
    for number, (phrase, build) in enumerate(builders.items()):
        student = f"bad{number:02d}"
        build(inbox, f"{student}_upload.zip")
        expected[student] = phrase
    archives.good(inbox, "alice.zip")
    before = _tree(root)

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert outcomes["alice"].status == "collected"
    for student, phrase in expected.items():
        outcome = outcomes[student]
        assert outcome.status == "rejected", (student, outcome)
        assert phrase in outcome.message, (student, outcome.message)
        assert outcome.message.count(". ") == 0 and outcome.message.endswith("."), outcome.message
        record = results.read_result(course, ASSIGNMENT, student)
        assert record["status"] == "rejected" and record["message"] == outcome.message
        assert record["total"] == 0.0
        assert not submitted_dir(course, ASSIGNMENT, student).exists()
    after = _tree(root)
    outside = {k for k in after if not k.startswith("course/")}
    assert outside == set(before), outside ^ set(before)
    assert not escape_target.exists()
    assert (
        not list(root.parent.glob("escaped_by_*")) and not Path("/escaped_by_traversal.py").exists()
    )


def test_file_names_in_other_encodings_are_kept_and_never_reject_the_hand_in(workspace):
    """Without the UTF-8 flag a name is read as UTF-8 when it is valid UTF-8, else in cp437 (the
    zip standard's default): a Latin-1 umlaut from an old zip tool looks odd but costs nothing."""
    inbox, course = workspace["inbox"], workspace["course"]
    archives.non_utf8_name(inbox, "dora.zip")
    archives.non_utf8_name(inbox, "emil.zip", stored_name=b"L\xc3\xb6sung")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    for student, shown_as in (("dora", "L\u00f7sung.txt"), ("emil", "L\u00f6sung.txt")):
        assert outcomes[student].status == "collected", outcomes[student]
        folder = submitted_dir(course, ASSIGNMENT, student)
        assert (folder / shown_as).read_text() == "meine Notizen"
        for entry, content in archives.GOOD_FILES.items():
            assert (folder / entry).read_text() == content


def test_newest_of_several_zips_wins_and_collect_says_so(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.two_zips(inbox, "carol")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert outcomes["carol"].zip_path.name == "carol_second_try.zip"
    networks = submitted_dir(course, ASSIGNMENT, "carol") / "exercise_code/networks.py"
    assert "newer" in networks.read_text()
    out = capsys.readouterr().out
    assert "using the newest, carol_second_try.zip" in out
    assert "carol_first_try.zip" in out


def test_collecting_again_changes_nothing_and_a_new_zip_replaces_the_old(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    alice = archives.good(inbox, "alice.zip")
    archives.not_a_zip(inbox, "zed.zip")
    collect(course, ASSIGNMENT, [inbox])
    results.write_result(course, ASSIGNMENT, "alice", {"status": "graded", "message": ""})
    snapshot = _tree(course)

    again = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert {o.status for o in again.values()} == {"unchanged"}
    assert _tree(course) == snapshot

    archives.macosx_junk(inbox, "alice.zip")
    os.utime(alice, (2_000_000_000, 2_000_000_000))
    third = _by_id(collect(course, ASSIGNMENT, [inbox]))
    assert third["alice"].status == "collected"
    assert results.read_result(course, ASSIGNMENT, "alice") is None, "old result must be forgotten"


def test_a_good_zip_after_a_rejected_one_replaces_the_rejection_and_vice_versa(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.not_a_zip(inbox, "frank.zip")
    collect(course, ASSIGNMENT, [inbox])
    assert results.read_result(course, ASSIGNMENT, "frank")["status"] == "rejected"

    archives.good(inbox, "frank.zip")
    assert collect(course, ASSIGNMENT, [inbox])[0].status == "collected"
    assert results.read_result(course, ASSIGNMENT, "frank") is None

    archives.truncated(inbox, "frank.zip")
    assert collect(course, ASSIGNMENT, [inbox])[0].status == "rejected"
    assert not submitted_dir(course, ASSIGNMENT, "frank").exists()


def test_lower_limits_reject_what_default_limits_accept(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "gina.zip")
    outcome = collect(course, ASSIGNMENT, [inbox], limits=Limits(max_entries=2))[0]
    assert outcome.status == "rejected" and "more than the limit of 2" in outcome.message


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("alice.zip", None, "alice"),
        ("alice_exercise_08.zip", None, "alice"),
        ("a.b-c_x.ZIP", None, "a.b-c"),
        ("My Name_123.zip", None, None),
        ("_x.zip", None, None),
        ("Jane Doe_123456_assignsubmission_file_hw.zip", r"_(?P<id>\d+)_assign", "123456"),
        ("sub-u42.zip", r"u(\d+)", "42"),
        ("nomatch.zip", r"u(\d+)", None),
    ],
)
def test_student_id_comes_from_the_file_name(name, pattern, expected):
    import re

    compiled = re.compile(pattern) if pattern else None
    assert student_id_from_name(name, compiled) == expected


def test_unusable_names_are_skipped_and_missing_paths_fail_clearly(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "My Homework.zip")
    assert collect(course, ASSIGNMENT, [inbox]) == []
    assert "--id-pattern" in capsys.readouterr().out
    with pytest.raises(AutograderError, match="does not exist"):
        collect(course, ASSIGNMENT, [inbox / "missing.zip"])
    with pytest.raises(AutograderError, match="not a valid regular expression"):
        collect(course, ASSIGNMENT, [inbox], id_pattern="(")


def test_the_command_line_collects_and_reports_problems_in_one_sentence(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "alice.zip")
    archives.empty(inbox, "bob.zip")
    command = [sys.executable, "-m", "autograder", "--course-dir", str(course), "collect"]

    done = subprocess.run(
        [*command, ASSIGNMENT, str(inbox)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "alice: collected" in done.stdout and "bob: rejected" in done.stdout

    missing = subprocess.run(
        [*command, ASSIGNMENT, str(inbox / "nope.zip")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
