"""The Ray actors that evaluate a run's trials."""

from __future__ import annotations

import logging
import os

import ray

from autocompress.base import load_base
from autocompress.candidate import Candidate
from autocompress.devices import worker_device
from autocompress.hw.profile import HardwareProfile
from autocompress.run.run import Run
from autocompress.search import cluster
from autocompress.search.worker import TrialEvaluator
from autocompress.tasks import Task

log = logging.getLogger(__name__)


class Workers:
    """``--workers`` trial evaluators on a local Ray or the cluster at ``address``, each given the
    run's task and base network once; ``idle`` holds those free for a trial."""

    def __init__(self, run: Run, profile: HardwareProfile, task: Task, address: str | None) -> None:
        config, files = run.config, run.files
        threads = config.threads or (1 if address else max(1, (os.cpu_count() or 1) // config.workers))
        self.files = files
        self.started = cluster.start(address, config.workers * threads, files.ray_processes)
        if self.started and not address:
            cluster.record_local_processes(files.ray_processes)
        cpus = ray.cluster_resources().get("CPU", 0)
        log.info("%d workers x %d torch threads (Ray CPUs: %d needed, %g in the cluster)",
                 config.workers, threads, config.workers * threads, cpus)
        if cpus < config.workers * threads:
            log.warning("the cluster has fewer CPUs than the workers reserve: some wait until it grows")
        if ray.cluster_resources().get("GPU", 0) < config.workers * config.gpus_per_worker:
            log.warning("the cluster has fewer GPUs than --gpus-per-worker x workers: some wait until it grows")
        base, _ = load_base(run.space, files.base)
        shared = (ray.put(task), ray.put(base.state_dict()))  # the built-in task's data: each worker opens them
        gpus = config.gpus_per_worker
        self._actor = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0)(TrialEvaluator)
        settings = (config.constraints, config.seed, config.finetune_epochs, threads, worker_device(gpus))
        self._arguments = (run.space, profile.model_dump_json(), *shared, *settings)
        self.idle = [self.spawn() for _ in range(config.workers)]

    def probe(self, candidates: list[Candidate]) -> list[tuple[float | None, float]]:
        """Each candidate's validation loss and accuracy before any fine-tune (``TrialEvaluator.probe``),
        spread over the idle workers."""
        refs = [self.idle[i % len(self.idle)].probe.remote(c.to_json()) for i, c in enumerate(candidates)]
        return ray.get(refs)

    def spawn(self) -> ray.actor.ActorHandle:
        """A new evaluator (for one that died)."""
        return self._actor.remote(*self._arguments)

    def stop(self) -> None:
        """Stop the local Ray this started, if it did."""
        cluster.stop(self.started, self.files.ray_processes)
