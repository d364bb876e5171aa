"""Bad input, across the product (issue 8 item 6): malformed and hostile uploads, form
fields no person should send, spreadsheet formulas in CSV exports and script injection
in every free-text field a page renders. Each gets a clear error or safe rendering."""
