"""``python3 -m trellis worker ...``: see trellis.worker."""

import sys

from .worker import USAGE, main


def run(argv):
    if len(argv) >= 1 and argv[0] == "worker":
        return main(argv[1:])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
