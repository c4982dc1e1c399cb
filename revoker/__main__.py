"""Allow ``python -m revoker``."""

from revoker.cli import main

raise SystemExit(main())
