from echo_rl.cli import main

raise SystemExit(main())
