"""`python -m ferkit.batch ARGS...`: `ferkit batch ARGS...`, through ferkit.cli.main's one error path."""
import sys

from ..cli import main

main(["batch", *sys.argv[1:]])
