"""tvbench leaderboard: entries on disk, submissions, statistics, tables, HTML and citations.

Layer: leaderboard. May import the evaluation core (`benchmark.metrics`, `benchmark.runs`, `benchmark.io`) and
`benchmark.data` (split manifests); never `benchmark.engine`, `benchmark.study` or a method package, so scoring a
submission needs no model code.
"""
