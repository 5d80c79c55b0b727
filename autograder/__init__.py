"""CNN-lesson autograder: assignments from otter master notebooks, sandboxed grading."""

__version__ = "0.1.0"
