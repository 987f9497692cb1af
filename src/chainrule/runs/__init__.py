"""Training runs: options, data source and exact split, the model file with its preprocessing,
metrics, the run directory, and everything ``chainrule train`` / ``evaluate`` do.

Modules: ``config`` (TrainConfig), ``source`` (where rows come from; ``split.json``),
``model_file`` (the model with its metadata, validated), ``metrics`` (scikit-learn's),
``directory`` (run directories as transactions), ``training`` (:func:`train_run`),
``evaluation`` (:func:`evaluate_run`).
"""

from .config import DEFAULTS, LOSSES, OPTIMIZERS, RECOMMENDED, TrainConfig, parse_hidden, \
    read_config_file
from .evaluation import Evaluation, evaluate_run
from .metrics import compute_metrics, headline
from .model_file import RunModel, load_run_model, predict_outputs
from .training import Setup, TrainingInterrupted, build, loaders, prepare_data, \
    train_run

load_model_bundle = load_run_model

__all__ = [
    "DEFAULTS", "LOSSES", "OPTIMIZERS", "RECOMMENDED", "TrainConfig", "parse_hidden",
    "read_config_file", "Evaluation", "evaluate_run", "compute_metrics", "headline", "RunModel",
    "load_run_model", "load_model_bundle", "predict_outputs", "Setup", "TrainingInterrupted",
    "build", "loaders", "prepare_data", "train_run",
]
