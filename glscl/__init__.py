"""GLSCL: global interaction, shared local interaction, ICL and IDL; importing registers `glscl` and its ablations."""

from glscl import functional, local_module, model
from glscl.model import GLSCL, GLSCLConfig

__all__ = ["GLSCL", "GLSCLConfig", "functional", "local_module", "model"]
