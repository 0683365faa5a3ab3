import sys

from sarm.cli import main

sys.exit(main())
