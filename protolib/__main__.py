import sys

from protolib.cli import main

sys.exit(main())
