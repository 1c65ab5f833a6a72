import sys

from hemato.weights import main

sys.exit(main())
