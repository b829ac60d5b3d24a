"""GLSCL: global interaction, shared local interaction, ICL and IDL; importing registers `glscl` and its ablations.

Layer: methods. May import the model contract (`benchmark.registry`, `benchmark.retrieval_model`) and the engine's
building blocks (`benchmark.engine.backbone`, `clip_model`, `temporal`, `text_guided`, `losses`); never the training or
evaluation runs, `benchmark.study`, `leaderboard` or `baselines`.
"""

from glscl import functional, local_module, model
from glscl.model import GLSCL, GLSCLConfig

__all__ = ["GLSCL", "GLSCLConfig", "functional", "local_module", "model"]
