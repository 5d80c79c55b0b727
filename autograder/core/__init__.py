"""The base every stage uses: assignment configuration, errors and outcomes, result records,
atomic writes, the logging of diagnostics (``logs.py``). Imports nothing else of the grader."""
