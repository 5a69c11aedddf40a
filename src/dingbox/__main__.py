from dingbox.cli import main

main()
