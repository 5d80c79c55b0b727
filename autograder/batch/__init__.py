"""Grading a class: collect submissions, skip what is already graded (resume), run jobs on
a local pool or Ray with progress, write the outputs. Imports ``core``, ``sandbox``,
``grading`` and ``outputs``."""
