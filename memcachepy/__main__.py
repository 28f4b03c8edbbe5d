import sys

from memcachepy.cli import main

sys.exit(main())
