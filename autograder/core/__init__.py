"""The base every stage uses: assignment configuration, errors and outcomes, result records,
atomic writes. Imports nothing else of the grader."""
