"""`python -m astra_repro.report`: the one-page HTML report (see report/page.py)."""

from astra_repro.report.page import main

if __name__ == "__main__":
    main()
