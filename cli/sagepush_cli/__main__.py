from sagepush_cli.main import main

main()
