"""churnwatch: call recordings in, churn early-warnings out.

Importing this package loads no model and opens no database: the CLI (or your code) loads
models explicitly and passes them to the stage functions.
"""

__version__ = "0.1.0"
