"""Print the folders other users cannot enter on the way to this interpreter and to argv[1].

.ci/run opens them (o+x) so that the uid level's workers, which run as unprivileged uids,
can start the interpreter and import the sandbox package.
"""

import os
import stat
import sys

for target in (os.path.realpath(sys.executable), os.path.realpath(sys.argv[1])):
    folder = target if os.path.isdir(target) else os.path.dirname(target)
    while True:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            print(folder)
        if folder == "/":
            break
        folder = os.path.dirname(folder)
