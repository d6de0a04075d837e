"""Model parts: backbone, FPN, protonet, prediction head, YOLACT++ mask re-scoring."""
from .yolact import Yolact

__all__ = ["Yolact"]
