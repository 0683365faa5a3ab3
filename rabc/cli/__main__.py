import sys

from rabc.cli import main

sys.exit(main())
