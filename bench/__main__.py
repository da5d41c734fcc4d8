"""``python -m bench``: see bench/suite.py (``make bench``)."""
from bench.suite import main

main()
