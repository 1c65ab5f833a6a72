import sys

from hemato.bench.cli import main

sys.exit(main())
