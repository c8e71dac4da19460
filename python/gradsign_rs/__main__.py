import sys

from gradsign_rs.cli import main

sys.exit(main())
