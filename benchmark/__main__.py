"""``python -m benchmark`` is the ``tvbench`` command."""

from benchmark.cli import main

raise SystemExit(main())
