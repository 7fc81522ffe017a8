"""Attention-controlled editing of inverted images (Prompt-to-Prompt; plug-and-play injection) through
diffusers' attention-processor hooks.

- :mod:`.processor`: the processor that lets a controller see and change attention, and the ``with``
  block that installs it;
- :mod:`.control`: the two-branch edit batch (source rows, target rows) and the base controller;
- :mod:`.tokens`: aligning the words of two prompts;
- :mod:`.p2p`: Prompt-to-Prompt replace / refine / reweight with local blending;
- :mod:`.edit`: running an edit of a finished inversion with any method's sampler.
"""

from .control import Branches, CallLayout, ControlledDenoiser, Controller
from .edit import AttentionEditResult, attention_edit
from .p2p import P2POptions, PromptToPrompt
from .processor import AttentionHooks, Site, attention_control

__all__ = ["AttentionEditResult", "AttentionHooks", "Branches", "CallLayout", "ControlledDenoiser", "Controller",
           "P2POptions", "PromptToPrompt", "Site", "attention_control", "attention_edit"]
