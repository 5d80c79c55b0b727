"""Authoring: master notebook -> student notebook and grader-side tests (otter assign),
scaffolds of new assignments, the mutants that test the tests. Imports only ``core``."""
