"""The study behind `tvbench reproduce`: the pipeline (`reproduce`), its statistics (`analysis`) and report writers
(`report`, `document`).

Layer: study, the highest below the command dispatcher. May import everything below it: the evaluation core,
`benchmark.data`, `benchmark.engine` and `leaderboard` (models only by name through `benchmark.registry`).
"""
