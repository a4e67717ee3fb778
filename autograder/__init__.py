"""The instructor tool of the exercise 08 course package: ``python -m autograder <command>``.

One module per step of the workflow, each with one public entry point:
``data`` (prepare MNIST), ``release`` (student version), ``collect`` (import zips),
``grade`` (nbgrader autograde + hidden-accuracy check), ``report`` (grade table and feedback)
and ``demo`` (the whole pipeline on built-in samples). ``cli`` only parses arguments.
"""
