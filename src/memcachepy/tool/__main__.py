import sys

from memcachepy.tool.cli import main

sys.exit(main())
