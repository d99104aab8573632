"""canvas-export: asynchronous export of Canvas LMS sections and section rosters to Parquet."""

__version__ = "0.1.0"
