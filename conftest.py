"""Test-session settings shared by tests/ and the doctests of smlmspine/.

The package's memory budget defaults to a quarter of the machine's memory; tests pin it
to 1 GB so that what they refuse (and the doctests' messages) do not depend on the
machine. A test that needs another budget sets ``SMLMSPINE_MEMORY_BUDGET_GB`` itself.
"""

import os

os.environ["SMLMSPINE_MEMORY_BUDGET_GB"] = "1"
