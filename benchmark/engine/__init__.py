"""The training and evaluation engine: backbone, temporal module, losses, optimisation, DDP, checkpoints, run set-up,
pretraining, training and evaluation runs, efficiency.

Layer: engine. May import the evaluation core and `benchmark.data`; never `benchmark.study`, `leaderboard` or a
method package (models are built by name through `benchmark.registry`). `baselines` and `glscl` import only its
building blocks (`backbone`, `clip_model`, `temporal`, `text_guided`, `losses`).
"""
