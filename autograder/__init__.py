"""The instructor tool of the exercise 08 course package: ``python -m autograder <command>``.

One module per step of the workflow, each with one public entry point:
``data`` (prepare MNIST), ``release`` (student version), ``collect`` (import zips),
``grade`` (trusted checks, hidden-accuracy check, the notebook run for the feedback), ``report``
(grade table and feedback), ``serve`` (the submission service) and ``demo`` (the whole pipeline
on built-in samples). ``cli`` only parses arguments.
"""

import sys

# nbformat's validator (which nbgrader imports) makes jsonschema build an IRI grammar from
# ``rfc3987_syntax`` when that module can be imported: about 1 s of CPU in every process that
# reads a gradebook, for a format nothing here checks. Marked missing, jsonschema skips it
# (the warm parent does the same for the notebook run, sandbox/worker.py).
sys.modules.setdefault("rfc3987_syntax", None)
