"""Dataset-scale inversion: any number of images, streamed, resumable, on one process or a Ray cluster.

``run_dataset`` drives a run into the dataset layout (``runs.shards``: ``OUT/results/part-*.parquet``);
the engines (``engines``) feed batches of decoded images to :class:`~invertkit.datasets.worker.BatchInverter`
workers and hand their rows back to the single writer.
"""

from .job import JobSpec
from .runner import DatasetRunner, RunSummary

__all__ = ["DatasetRunner", "JobSpec", "RunSummary"]
