from sagepush_cli.entry import main

main()
