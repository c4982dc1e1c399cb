"""Allow ``python -m revoker``."""

from revoker.cli.main import main

raise SystemExit(main())
