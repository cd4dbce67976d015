import sys

from wganlab.cli import main

sys.exit(main())
