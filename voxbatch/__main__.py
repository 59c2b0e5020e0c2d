from voxbatch.cli import main

main()
