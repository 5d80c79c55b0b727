"""What a graded batch leaves in OUT: the gradebook, results.json, feedback, the records a
resumed batch reads, fingerprints and similar pairs, the class report. Imports ``core`` and
``grading`` (for parsing notebooks), never the batch that writes them."""
