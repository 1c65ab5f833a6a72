import sys

from hemato.predict.cli import main

sys.exit(main())
