"""Executors for ingest: this process, or Ray actors when a batch outgrows one process.

Each Ray worker is an actor that loads its models once (the slow part) and then ingests the
files it is handed, writing each call to the store in one transaction of its own. The store's
unique audio hash makes a re-run or two overlapping runs safe: a file already stored is
reported as a duplicate, never stored twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.errors import ChurnwatchError


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        disable=not enabled,
        transient=False,
    )


def run_jobs(jobs, settings, executor: str = "local", workers: int = 2, address: str | None = None,
             progress: bool = True, threads_per_worker: int | None = None):
    """Ingest (path, IngestOptions) jobs; returns one IngestResult per job, in job order."""
    if executor == "local":
        return run_local(jobs, settings, progress)
    if executor == "ray":
        return run_ray(jobs, settings, workers, address, progress, threads_per_worker)
    raise ChurnwatchError(f"Unknown executor {executor!r}. Choose local or ray.")


def run_local(jobs, settings, progress: bool = True):
    from pipeline.flow import ingest
    from pipeline import store

    engine = store.make_engine(settings.db_url)
    results = []
    with _progress(progress) as bar:
        task = bar.add_task("Loading models", total=len(jobs), current="")
        kit = ingest.load_toolkit(settings, detect_language=any(o.language is None for _, o in jobs))
        bar.update(task, description="Ingesting")
        stopped = None  # the result that found the store unwritable: later files are not tried
        for path, options in jobs:
            bar.update(task, current=Path(path).name)
            result = (ingest.not_tried(path, options, stopped) if stopped
                      else ingest.ingest_file(engine, Path(path), kit, options))
            stopped = stopped or (result if result.stops_batch else None)
            results.append(result)
            bar.advance(task)
        bar.update(task, current="")
    engine.dispose()
    return results


class IngestWorker:
    """A Ray actor body: models loaded once, then one call at a time."""

    def __init__(self, settings, threads: int):
        import torch

        from pipeline.flow import ingest
        from pipeline import store

        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch.set_num_threads(threads)
        settings = settings.with_overrides(threads=threads)
        self.engine = store.make_engine(settings.db_url)
        self.kit = ingest.load_toolkit(settings)

    def ingest(self, path: str, options):
        from pipeline.flow import ingest

        return ingest.ingest_file(self.engine, Path(path), self.kit, options)


def run_ray(jobs, settings, workers: int = 2, address: str | None = None, progress: bool = True,
            threads_per_worker: int | None = None):
    from pipeline.flow import ingest

    try:
        import ray
    except ImportError:
        raise ChurnwatchError("The ray executor needs Ray: pip install 'churnwatch[ray]'.") from None
    if workers < 1:
        raise ChurnwatchError(f"--workers must be at least 1, got {workers}.")
    threads = threads_per_worker or max(1, (os.cpu_count() or 2) // workers)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}})
    try:
        Actor = ray.remote(num_cpus=0)(IngestWorker)  # we pin threads ourselves
        actors = [Actor.remote(settings, threads) for _ in range(workers)]
        pending = {}
        queue = list(enumerate(jobs))
        results: dict[int, object] = {}
        stopped = None
        with _progress(progress) as bar:
            task = bar.add_task(f"Ingesting on {workers} Ray workers", total=len(jobs), current="")
            for actor in actors:
                if queue:
                    i, (path, options) = queue.pop(0)
                    pending[actor.ingest.remote(str(path), options)] = (i, actor)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i, actor = pending.pop(done[0])
                results[i] = ray.get(done[0])
                bar.update(task, advance=1, current=Path(results[i].file).name)
                if results[i].stops_batch:  # the store cannot be written: hand out no more files
                    stopped = stopped or results[i]
                    queue.clear()
                if queue:
                    j, (path, options) = queue.pop(0)
                    pending[actor.ingest.remote(str(path), options)] = (j, actor)
        return [results[i] if i in results else ingest.not_tried(path, options, stopped)
                for i, (path, options) in enumerate(jobs)]
    finally:
        if started_here:
            ray.shutdown()
