"""`python -m lib.cli`: the command line (subcommands register into `lib.cli.COMMANDS`)."""

from lib.cli import main

raise SystemExit(main())
