from grader.exchange.service.app import main

main()
