"""The bottom layer: what every other part of the autograder shares and nothing it imports.

- :mod:`.errors`: :class:`AutograderError`, the one exception a person running a command sees;
- :mod:`.records`: :class:`Status`, :class:`Verdict`, :class:`PartResult`, :class:`GradeRecord`
  (the one record of a graded submission; the CSV, the gradebook, Gradescope's results.json and
  the store are views of it);
- :mod:`.text`: :func:`clean_text` and student ids;
- :mod:`.paths`: :data:`REPO_ROOT`;
- :mod:`.settings`: :class:`GradeSettings`, the grader's limits;
- :mod:`.assignment`: what an exercise's ``grading/`` folder provides, and the one loader of
  modules by path.

Modules here import only the standard library and each other.
"""
