"""`python -m langgraph_speculative`: the `langgraph-speculative` command."""

import sys

from ._cli import main

sys.exit(main())
