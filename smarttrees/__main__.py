from smarttrees.cli import main

main()
