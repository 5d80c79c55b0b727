"""Escapes whose success is seen from outside the sandbox, for every isolation level.

Scores alone cannot tell whether a submission read a hidden test or reached the network (a
cheat can keep quiet about it), so each of these leaves evidence outside the worker: a hidden
test it managed to read is raised as an error whose text reaches its feedback ("LEAKED"), a
TCP connection is seen by a listener the batch runs (:class:`catalogue.levels.Witness`),
a signal is seen by processes of the grader's user and of another user that must outlive
the batch, and a killed grader is seen by the grader's own exit status. Contained, each keeps
the reference's full marks.
"""

from __future__ import annotations

from .scenarios import ALL, Scenario, with_cell

HIDDEN_TEST = "{root}/solutions/01_convolution_pooling/tests/conv2d.py"

ESCAPE_SCENARIOS: list[Scenario] = [
    Scenario(
        "escape_read_hidden_test",
        "reads a hidden test file of its assignment",
        with_cell(
            "reference",
            f"leaked = None\ntry:\n    leaked = open('{HIDDEN_TEST}').read()\n"
            "except OSError:\n    pass\n"
            "if leaked:\n    raise RuntimeError('LEAKED ' + leaked[:60])\n",
            where="end",
        ),
        full_marks=(ALL,),
        feedback_absent=("LEAKED",),
    ),
    Scenario(
        "escape_tcp_loopback",
        "connects to a TCP server on the grading machine's loopback",
        with_cell(
            "reference",
            "import socket\ntry:\n"
            "    with socket.create_connection(('127.0.0.1', {port}), timeout=3) as s:\n"
            "        s.sendall(b'escape_tcp_loopback')\n"
            "except OSError:\n    pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_signal_others",
        "SIGKILLs processes of the grader's user and of another user",
        with_cell(
            "reference",
            "import os, signal\nfor pid in {victims}:\n    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_kill_parent",
        "SIGKILLs the process that started it",
        with_cell("reference", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
                  where="end"),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_kill_group",
        "SIGKILLs the process group of the process that started it",
        with_cell("reference",
                  "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n",
                  where="end"),
        full_marks=(ALL,),
    ),
]
