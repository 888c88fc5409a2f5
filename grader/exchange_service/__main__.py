from grader.exchange_service.app import main

main()
