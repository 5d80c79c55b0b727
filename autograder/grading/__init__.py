"""Grading one submission: load and parse the notebook, run it in the sandbox, bind the
tests to proxies, judge every question (the rules in layers), evaluate saved models on the
image sets; ``pipeline`` does one submission end to end. Imports ``core`` and ``sandbox``."""
