"""Hardware-aware multi-objective search: Optuna samples and records, Ray evaluates.

The driver (``driver.run_search``) is the only writer of the run folder and of the Optuna
storage; Ray actors (``worker.TrialWorker``) only evaluate candidates and return results.
"""
