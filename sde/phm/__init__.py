"""Population health analyses (reference/phm-analytics.md): pure functions over the
tables of an extract (pandas DataFrames), with no ORM and no settings, so the same code
runs in the worker, in the sandbox's helper library and in the tests."""
