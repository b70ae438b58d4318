from ccstate.sandbox.cli import main

main()
