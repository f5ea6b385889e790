"""The sagepush command line: push code, render requests, follow jobs, run the pipeline locally."""
