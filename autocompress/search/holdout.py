"""The final front and the baselines measured once on the test split, after the search.

The search scores and selects trials on the validation split only; the more candidates it
looks at, the more optimistic the front's validation accuracies are. So, once the driver has
returned, each trial on the front and each completed baseline that has no test figure yet is
measured on the test split, which no trial and no sampler has seen, and the figure is kept in
the run folder, from which every rewrite of the trial table and the front takes its
``test_accuracy`` column. The front is compared with the baselines on those figures. A resumed
run measures only the trials not measured yet.
"""

from __future__ import annotations

import logging

from autocompress.devices import worker_device
from autocompress.pipeline import load_trial_model
from autocompress.progress import progress_bar
from autocompress.run.run import Run
from autocompress.tasks import Split, Task

log = logging.getLogger(__name__)


def measure_test_split(run: Run, task: Task) -> dict[int, float]:
    """Test score of the run's front trials and baselines, measuring those not measured yet."""
    measured = run.test_accuracy()
    todo = [trial.number for trial in run.test_split_trials() if trial.number not in measured]
    if todo:
        device = worker_device(run.config.gpus_per_worker)
        for number in progress_bar(iterable=todo, desc="front and baselines on the test split", unit="model"):
            _, model = load_trial_model(run.space, run.model_path(number))
            measured[number] = task.score(model.to(device), Split.TEST)
            run.write_test_accuracy(measured)
            log.info("trial %d: test %s %.4f", number, task.metric, measured[number])
    run.write_tables(run.trials)
    return measured
