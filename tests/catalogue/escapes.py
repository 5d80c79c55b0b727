"""Escapes whose success is seen from outside the sandbox, for every isolation level.

Scores alone cannot tell whether a submission read a hidden test or reached the network (a
cheat can keep quiet about it), so each of these leaves evidence outside the worker: a hidden
test it managed to read is raised as an error whose text reaches its feedback ("LEAKED"), a
TCP connection is seen by a listener the batch runs (:class:`catalogue.levels.Witness`),
a signal is seen by processes of the grader's user and of another user that must outlive
the batch, and a killed grader is seen by the grader's own exit status. Sockets beyond TCP
(MPTCP, UDP, a named Unix socket) are witnessed by listeners of their own; what a notebook
reads (netlink, a SysV segment of another user, other processes' command lines, the kernel
interfaces a sandbox refuses) it raises into its feedback as "LEAKED" (spelled in two pieces
in the source, which a review flag may quote); a process that outlives
its worker is seen after the batch. Contained, each keeps the reference's full marks.
"""

from __future__ import annotations

from .scenarios import ALL, Scenario, with_cell

HIDDEN_TEST = "{root}/solutions/01_convolution_pooling/tests/conv2d.py"
SECRET_MARK = "AGSECRET-"  # starts the token a victim process outside carries on its command line
SURVIVOR_NAME = "ag-survivor"  # the name a surviving process gives itself (seen from outside)

ESCAPE_SCENARIOS: list[Scenario] = [
    Scenario(
        "escape_read_hidden_test",
        "reads a hidden test file of its assignment",
        with_cell(
            "reference",
            f"leaked = None\ntry:\n    leaked = open('{HIDDEN_TEST}').read()\n"
            "except OSError:\n    pass\n"
            "if leaked:\n    raise RuntimeError('LEA' 'KED ' + leaked[:60])\n",
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
        "escape_mptcp_loopback",
        "connects to the loopback TCP server over MPTCP (Landlock handles TCP only)",
        with_cell(
            "reference",
            "import socket\ntry:\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)\n"
            "    s.settimeout(3)\n    s.connect(('127.0.0.1', {port}))\n"
            "    s.sendall(b'escape_mptcp_loopback')\n    s.close()\n"
            "except OSError:\n    pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_udp_loopback",
        "sends a UDP datagram to a socket on the grading machine's loopback",
        with_cell(
            "reference",
            "import socket\ntry:\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "    s.sendto(b'escape_udp_loopback', ('127.0.0.1', {udp_port}))\n"
            "except OSError:\n    pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_unix_socket",
        "connects to a world-writable named Unix socket outside its sandbox",
        with_cell(
            "reference",
            "import socket\ntry:\n"
            "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "    s.settimeout(3)\n    s.connect('{unix_socket}')\n"
            "    s.sendall(b'escape_unix_socket')\n    s.close()\n"
            "except OSError:\n    pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "escape_netlink",
        "asks the kernel over netlink for the machine's network interfaces",
        with_cell(
            "reference",
            "import socket, struct\nleaked = b''\ntry:\n"
            "    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n"
            "    s.bind((0, 0))\n    s.settimeout(3)\n"
            "    s.send(struct.pack('=IHHII', 32, 18, 0x301, 1, 0) + bytes(16))\n"
            "    leaked = s.recv(65536)\nexcept OSError:\n    pass\n"
            "if leaked:\n    raise RuntimeError('LEA' 'KED netlink answered %d bytes' % len(leaked))\n",
            where="end",
        ),
        full_marks=(ALL,),
        feedback_absent=("LEAKED",),
    ),
    Scenario(
        "escape_sysv_ipc",
        "reads another user's SysV shared memory and leaves segments and queues behind",
        with_cell(
            "reference",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.shmat.restype = ctypes.c_void_p\n"
            "for _ in range(3):\n    libc.shmget(0, 1 << 24, 0o1600)\n    libc.msgget(0, 0o1600)\n"
            "found = libc.shmget({shm_key}, 0, 0)\n"
            "if found >= 0:\n    address = libc.shmat(found, None, 0o10000)\n"
            "    if address not in (None, ctypes.c_void_p(-1).value):\n"
            "        raise RuntimeError('LEA' 'KED ' + ctypes.string_at(address, 16).decode())\n",
            where="end",
        ),
        full_marks=(ALL,),
        feedback_absent=("LEAKED",),
    ),
    Scenario(
        "escape_read_cmdlines",
        "reads other processes' command lines (a Ray node's address, tokens) from /proc",
        with_cell(
            "reference",
            "import os\nfor pid in os.listdir('/proc'):\n"
            "    if not pid.isdigit() or int(pid) == os.getpid():\n        continue\n"
            "    try:\n        line = open('/proc/%s/cmdline' % pid, 'rb').read()\n"
            "    except OSError:\n        continue\n"
            f"    if b'{SECRET_MARK[:4]}' b'{SECRET_MARK[4:]}' in line:\n"
            "        raise RuntimeError('LEA' 'KED ' + line.replace(b'\\0', b' ').decode()[-60:])\n",
            where="end",
        ),
        full_marks=(ALL,),
        feedback_absent=("LEAKED", SECRET_MARK),
    ),
    Scenario(
        "escape_kernel_interfaces",
        "reaches the kernel interfaces a sandbox refuses: user namespaces, ptrace, io_uring, "
        "keyrings, bpf, perf, userfaultfd",
        with_cell(
            "reference",
            "import ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.syscall.restype = ctypes.c_long\nworked = []\n"
            "pid = os.fork()\nif pid == 0:\n    os._exit(0 if libc.unshare(0x10000000) == 0 "
            "else 1)\n"
            "if os.waitpid(pid, 0)[1] == 0:\n    worked.append('user namespace')\n"
            "child = os.fork()\nif child == 0:\n    time.sleep(30)\n    os._exit(0)\n"
            "if libc.ptrace(16, child, None, None) == 0:\n    worked.append('ptrace')\n"
            "os.kill(child, 9)\nos.waitpid(child, 0)\n"
            "attr = ctypes.create_string_buffer(128)\n"
            "for name, number, args in (('io_uring', 425, (8, attr)), ('keyctl', 250, "
            "(0, -3, 0)), ('bpf', 321, (0, None, 0)), ('userfaultfd', 323, (0,)), "
            "('perf_event_open', 298, (attr, 0, -1, -1, 0))):\n"
            "    if libc.syscall(number, *args) >= 0 or ctypes.get_errno() not in (1, 13, 38):\n"
            "        worked.append(name)\n"
            "if worked:\n    raise RuntimeError('LEA' 'KED ' + ', '.join(worked))\n",
            where="end",
        ),
        full_marks=(ALL,),
        feedback_absent=("LEAKED",),
    ),
    Scenario(
        "escape_survivor",
        "leaves a process behind whose thread-group leader exits alone (a zombie leader with "
        "live threads), holding the worker uid's process limit for the next submission",
        with_cell(
            "reference",
            "import ctypes, os, threading, time\npid = os.fork()\nif pid == 0:\n"
            "    os.setsid()\n    libc = ctypes.CDLL(None)\n"
            f"    libc.prctl(15, b'{SURVIVOR_NAME}', 0, 0, 0)\n"
            "    def hold():\n        while True:\n            time.sleep(1)\n"
            "    for _ in range(40):\n        try:\n"
            "            threading.Thread(target=hold, daemon=True).start()\n"
            "        except RuntimeError:\n            break\n"
            "    libc.pthread_exit(None)\n"
            "time.sleep(0.5)\n",
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
