"""Encoders: networks that invert images in one forward pass (pSp, e4e, ReStyle), their training,
their files, and the shipped encoders of the offline zoo generators."""

from .config import ARCHS, EncoderConfig, config_for
from .files import load_encoder, read_encoder_file, save_encoder
from .inference import encode, encode_batched
from .nets import Encoder
from .train import TrainOptions, train_encoder

__all__ = ["ARCHS", "Encoder", "EncoderConfig", "TrainOptions", "config_for", "encode", "encode_batched",
           "load_encoder", "read_encoder_file", "save_encoder", "train_encoder"]
