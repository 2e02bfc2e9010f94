"""`make demo`: the main job, the closed-loop EqM demo on the shipped default checkpoint.

A thin wrapper so that `make demo` and `vla-eqm demo` are the same code path; extra arguments pass
through (e.g. `make demo DEMO_ARGS="--episodes 3"`).
"""

import sys

from vla_eqm_train.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
