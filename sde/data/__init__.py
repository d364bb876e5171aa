"""Data generation and handling that stays pure: NumPy/pandas/pyarrow, no Django."""
