import sys

from hemato.weights.pack import main

sys.exit(main())
