"""``python -m lab classroom ...``: image a lab classroom with the real programs."""

from .cli import main

raise SystemExit(main())
