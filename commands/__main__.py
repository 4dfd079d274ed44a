"""`python -m commands`: the same as the `kdsim` console script."""
from .cli import main

raise SystemExit(main())
