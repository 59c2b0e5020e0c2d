from voxbatch.cli.main import main

main()
