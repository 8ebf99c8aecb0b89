import sys

from semsmooth_core.cli import main

sys.exit(main())
