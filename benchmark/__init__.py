"""tvbench's common harness, in layers (lower layers never import higher ones; import-linter checks it).

This top level is the lowest layer: the evaluation core and the contracts (`metrics`, `runs`, `io`, `registry`,
`retrieval_model`, `presets`, and the commands that need nothing else: `metrics_cli`, `models_cli`). It imports no
other tvbench package. Above it: `benchmark.data`, then `benchmark.engine`, then the methods (`baselines`, `glscl`)
and `leaderboard`, then `benchmark.study`; `benchmark.cli` only dispatches to each layer's command modules.
"""

__version__ = "0.1.0"
