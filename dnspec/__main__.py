import sys

from dnspec.cli import main

sys.exit(main())
