from dbrunbook.cli import main

main()
