"""collect: real zips in, nbgrader's submitted/ layout out; each bad archive ends in a clear row."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import autograder_archives as archives
import pytest

from autograder import results
from autograder.collect import Limits, collect, student_id_from_name
from autograder.course import REPO_ROOT, AutograderError, submitted_dir, write_config

ASSIGNMENT = "exercise_08"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content (the comparison of 'nothing changed')."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


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
    assert not (course / ".staging").exists()


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
    assert outside == {k for k in before if not k.startswith("course/")}, outside ^ set(before)
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


def test_missing_paths_and_bad_patterns_fail_clearly(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    with pytest.raises(AutograderError, match="does not exist"):
        collect(course, ASSIGNMENT, [inbox / "missing.zip"])
    with pytest.raises(AutograderError, match="not a valid regular expression"):
        collect(course, ASSIGNMENT, [inbox], id_pattern="(")


UNUSABLE_NAMES = {
    "My Homework.zip": "My Homework.zip",
    "..zip": "..zip",
    ".hidden.zip": ".hidden.zip",
    "a..b_final.zip": "a..b_final.zip",
    "Zo\u00eb_exercise_08.zip": "Zo\u00eb_exercise_08.zip",
    "evil\nname.zip": "evil name.zip",
    "bell\x07ring.zip": "bellring.zip",
    "esc\x1b[31mred.zip": "escred.zip",
}
"""Names that give no usable id, and how a message shows them (control characters removed)."""


def test_every_upload_without_a_usable_id_gets_a_rejected_row_naming_the_file(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    for name in UNUSABLE_NAMES:
        archives.good(inbox, name)
    archives.good(inbox, "data.zip")
    archives.good(inbox, "x.hidden.zip")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert outcomes["data"].status == outcomes["x.hidden"].status == "collected"
    for name in UNUSABLE_NAMES:
        placeholder = "unnamed-" + hashlib.sha256(name.encode()).hexdigest()[:10]
        outcome = outcomes[placeholder]
        assert outcome.status == "rejected" and outcome.zip_path.name == name
        record = results.read_result(course, ASSIGNMENT, placeholder)
        assert record["status"] == "rejected" and record["message"] == outcome.message
        message = record["message"]
        assert message.isprintable() and "\x1b" not in message, message
        assert message.endswith(".") and message.count(". ") == 0, message
        assert "rename it to <id>.zip or <id>_<anything>.zip" in message
        assert message.startswith(f"{UNUSABLE_NAMES[name]} has no usable student id"), message
    assert len(outcomes) == len(UNUSABLE_NAMES) + 2
    out = capsys.readouterr().out
    assert all(c.isprintable() or c == "\n" for c in out) and "\x1b" not in out
    assert out.count("rejected") >= len(UNUSABLE_NAMES)
    folders = {p.name for p in (course / "submitted").iterdir()}
    assert folders == {"data", "x.hidden"}, "nothing is named after an unusable id"
    named = {p.name for p in course.rglob("*")}
    assert not any(n.startswith(("My Homework", "Zo", "..", "evil", "bell", "esc")) for n in named)


def test_the_manifest_the_report_reads_names_files_without_control_characters(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    older, newer = archives.two_zips(inbox, "carol")
    newer.rename(inbox / "carol_\x1b[2Jsecond\x07.zip")

    (outcome,) = collect(course, ASSIGNMENT, [inbox])

    assert outcome.zip_path.name == "carol_\x1b[2Jsecond\x07.zip"
    manifest = (course / "collected" / f"{ASSIGNMENT}.json").read_text()
    entry = json.loads(manifest)["carol"]
    assert Path(entry["zip"]).name == "carol_second.zip" and entry["ignored"] == [older.name]
    assert "\\u001b" not in manifest and "\\u0007" not in manifest


def test_a_fixed_name_replaces_the_rejected_row_of_the_unnamed_upload(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "Jane Doe u42.zip")
    (first,) = collect(course, ASSIGNMENT, [inbox])
    assert first.student_id.startswith("unnamed-") and first.status == "rejected"

    (second,) = collect(course, ASSIGNMENT, [inbox], id_pattern=r"u(?P<id>\d+)")

    assert (second.student_id, second.status) == ("42", "collected")
    assert results.read_results(course, ASSIGNMENT) == []
    assert "forgot its rejected row" in capsys.readouterr().out


def test_an_id_pattern_that_finds_no_usable_id_gives_a_rejected_row(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "sub-..x.zip")
    (outcome,) = collect(course, ASSIGNMENT, [inbox], id_pattern=r"sub-(?P<id>[^.]*\.\.x)")
    assert outcome.status == "rejected" and outcome.student_id.startswith("unnamed-")
    assert "change --id-pattern or rename it" in outcome.message


def test_a_newer_zip_of_the_other_assignment_never_competes_and_collect_says_why(workspace, capsys):
    """The issue's case: s1_exercise_08.zip and a newer s1_exercise_08_optional.zip in one
    folder; one name is a prefix of the other, so each collect must take its own."""
    inbox, course = workspace["inbox"], workspace["course"]
    main, extra = archives.both_assignments(inbox, "s1")

    (outcome,) = collect(course, ASSIGNMENT, [inbox])

    assert (outcome.student_id, outcome.status, outcome.zip_path) == ("s1", "collected", main)
    folder = submitted_dir(course, ASSIGNMENT, "s1")
    assert (folder / "autoencoder.ipynb").is_file() and not (
        folder / "regularization.ipynb"
    ).exists()
    out = capsys.readouterr().out
    assert (
        "skipped s1_exercise_08_optional.zip: its name says it is for exercise_08_optional, "
        "not exercise_08." in out
    )
    assert "newest" not in out
    manifest = json.loads((course / "collected" / f"{ASSIGNMENT}.json").read_text())
    assert manifest["s1"]["ignored"] == []

    (other,) = collect(course, "exercise_08_optional", [inbox])
    assert other.zip_path == extra and other.status == "collected"
    optional_folder = submitted_dir(course, "exercise_08_optional", "s1")
    assert (optional_folder / "regularization.ipynb").is_file()
    assert "skipped s1_exercise_08.zip: its name says it is for exercise_08," in (
        capsys.readouterr().out
    )


def test_a_zip_with_a_neutral_name_is_matched_by_the_notebook_it_holds(workspace, capsys):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.optional(inbox, "s2_upload.zip")
    archives.good(inbox, "s3_upload.zip", prefix="handin/")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert list(outcomes) == ["s3"] and outcomes["s3"].status == "collected"
    assert (
        "skipped s2_upload.zip: it holds regularization.ipynb, the notebook of "
        "exercise_08_optional, not autoencoder.ipynb of exercise_08." in capsys.readouterr().out
    )
    optional_outcomes = _by_id(collect(course, "exercise_08_optional", [inbox]))
    assert list(optional_outcomes) == ["s2"]


def test_a_damaged_zip_with_a_neutral_name_is_still_rejected_for_the_student(workspace):
    inbox, course = workspace["inbox"], workspace["course"]
    archives.truncated(inbox, "s4_upload.zip")
    (outcome,) = collect(course, ASSIGNMENT, [inbox])
    assert (outcome.student_id, outcome.status) == ("s4", "rejected")


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

    no_roster = subprocess.run(
        [*command, ASSIGNMENT, str(inbox), "--from", "moodle"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert no_roster.returncode == 1
    assert no_roster.stderr.strip().count("\n") == 0 and "needs --roster CSV" in no_roster.stderr


def test_every_file_in_the_folder_is_accounted_for_and_zips_in_subfolders_are_collected(
    workspace, capsys
):
    """notes.txt, .DS_Store and a folder of junk each get a line saying why they were skipped;
    a zip in a subfolder (a "late" folder, an unpacked download) is collected like the others."""
    inbox, course = workspace["inbox"], workspace["course"]
    archives.good(inbox, "alice.zip")
    (inbox / "notes.txt").write_text("grade carefully")
    (inbox / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (inbox / "late").mkdir()
    archives.good(inbox / "late", "bob_exercise_08.zip")
    (inbox / "late" / "readme.md").write_text("late ones")
    (inbox / "__MACOSX").mkdir()
    (inbox / "__MACOSX" / "._alice.zip").write_bytes(b"junk")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert {k: o.status for k, o in outcomes.items()} == {"alice": "collected", "bob": "collected"}
    out = capsys.readouterr().out
    for skipped in ("notes.txt", ".DS_Store", "late/readme.md", "__MACOSX"):
        lines = [line for line in out.splitlines() if line.startswith(f"skipped {skipped}")]
        assert len(lines) == 1, (skipped, out)
        assert lines[0].endswith("."), lines[0]
    assert "bob: collected late/bob_exercise_08.zip" in out


def test_a_renamed_zip_replaces_the_rejected_row_of_its_old_name(workspace, capsys):
    """The issue's case: "My Homework.zip" is rejected; the instructor renames it to carol.zip and
    collects again: carol is collected and the unnamed row is gone. A rejected row of an upload
    that was not part of this collect (another folder) stays."""
    inbox, course = workspace["inbox"], workspace["course"]
    other = workspace["root"] / "other"
    other.mkdir()
    archives.good(inbox, "My Homework.zip")
    archives.good(other, "Second Try.zip")
    collect(course, ASSIGNMENT, [inbox])
    collect(course, ASSIGNMENT, [other])
    rows = {r["student_id"] for r in results.read_results(course, ASSIGNMENT)}
    assert len(rows) == 2 and all(r.startswith("unnamed-") for r in rows)
    (inbox / "My Homework.zip").rename(inbox / "carol.zip")

    outcomes = _by_id(collect(course, ASSIGNMENT, [inbox]))

    assert outcomes["carol"].status == "collected"
    left = {r["student_id"]: r for r in results.read_results(course, ASSIGNMENT)}
    assert list(left) == ["unnamed-" + hashlib.sha256(b"Second Try.zip").hexdigest()[:10]]
    out = capsys.readouterr().out
    assert "My Homework.zip is no longer among the uploads" in out
    manifest = json.loads((course / "collected" / f"{ASSIGNMENT}.json").read_text())
    assert sorted(manifest) == sorted(["carol", *left])


def test_collect_refuses_a_folder_that_is_not_a_course_and_writes_nothing(workspace):
    """A mistyped --course-dir must not quietly start a second course."""
    archives.good(workspace["inbox"], "alice.zip")
    typo = workspace["root"] / "coures"
    with pytest.raises(AutograderError, match="does not exist: check --course-dir, or run release"):
        collect(typo, ASSIGNMENT, [workspace["inbox"]])
    assert not typo.exists()
