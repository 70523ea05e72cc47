from pvelab.cli import main

raise SystemExit(main())
