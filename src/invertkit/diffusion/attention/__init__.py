"""Attention-controlled editing of inverted images (Prompt-to-Prompt; plug-and-play injection) through
diffusers' attention-processor hooks.

- :mod:`.processor`: the hooks a controller implements and the processor for UNet attention;
- :mod:`.joint`: processors for SD3 / FLUX joint attention;
- :mod:`.install`: the ``with`` block that installs them (and module forward hooks) and restores the model;
- :mod:`.control`: the two-branch edit batch (source rows, target rows) and the base controller;
- :mod:`.tokens`: aligning the words of two prompts;
- :mod:`.p2p`: Prompt-to-Prompt replace / refine / reweight with local blending;
- :mod:`.pnp`: plug-and-play feature and self-attention injection (UNets);
- :mod:`.flow_share`: RF-Solver-Edit / FireFlow attention-value sharing (FLUX, SD3);
- :mod:`.edit`: running an edit of a finished inversion with any method's sampler.
"""

from .control import Branches, CallLayout, ControlledDenoiser, Controller
from .edit import AttentionEditResult, attention_edit
from .flow_share import ShareOptions, ValueSharing
from .install import attention_control
from .p2p import P2POptions, PromptToPrompt
from .pnp import PlugAndPlay, PnPOptions
from .processor import AttentionHooks, Site

__all__ = ["AttentionEditResult", "AttentionHooks", "Branches", "CallLayout", "ControlledDenoiser", "Controller",
           "P2POptions", "PlugAndPlay", "PnPOptions", "PromptToPrompt", "ShareOptions", "Site", "ValueSharing",
           "attention_control", "attention_edit"]
