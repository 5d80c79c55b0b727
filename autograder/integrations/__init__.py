"""Where grading meets other systems: the bundles of an assignment (Gradescope zip, student
kit), GitHub Classroom's points. Imports ``core``, ``authoring`` and ``grading``; it is
handed grader.py's entry point rather than importing the CLI above it."""
