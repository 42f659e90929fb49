"""python3 -m nlpclient: the Python client as a program, with nlpc's options, output
and exit codes (see nlpclient's docstring). Installed with the package."""
import sys

from nlpclient import main

sys.exit(main(sys.argv[1:]))
