"""Flow: a call through every stage (ingest), executors that run many (local, Ray), the demo."""

from pipeline.flow.demo import run_demo
from pipeline.flow.executors import run_jobs, run_local, run_ray
from pipeline.flow.ingest import IngestOptions, IngestResult, Toolkit, ingest_file, load_toolkit

__all__ = ["IngestOptions", "IngestResult", "Toolkit", "ingest_file", "load_toolkit", "run_demo", "run_jobs",
           "run_local", "run_ray"]
