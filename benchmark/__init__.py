"""tvbench's common harness: data, metrics, evaluation, training, efficiency and the reproduce pipeline."""

__version__ = "0.1.0"
