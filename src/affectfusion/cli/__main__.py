from affectfusion.cli.app import main

main()
