"""Reference baselines; importing the package registers them: clip-zeroshot, clip4clip-meanp, clip4clip-seqtransf,
xpool, xclip.

Layer: methods. May import the model contract (`benchmark.registry`, `benchmark.retrieval_model`) and the engine's
building blocks (`benchmark.engine.backbone`, `clip_model`, `temporal`, `losses`); never the training or evaluation
runs, `benchmark.study` or `leaderboard`.
"""

from baselines import clip4clip, clip_zeroshot, xclip, xpool

__all__ = ["clip4clip", "clip_zeroshot", "xclip", "xpool"]
