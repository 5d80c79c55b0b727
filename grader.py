#!/usr/bin/env python3
"""Instructor's entry point: python grader.py {assign,grade,demo} ... (see --help)."""

import sys

from autograder.cli import main

if __name__ == "__main__":
    sys.exit(main())
