"""What each family puts in its ONNX file, and what stays in the library's post-processing.

The rule is YOLACT's (:mod:`.onnx`): the graph is the network, ``image`` [B,3,S,S] -> the tensors
of ``model(x)`` in eval mode; everything whose size depends on the data (thresholds, NMS, the
per-detection mask steps) stays in the family's own ``detect``, run on onnxruntime's outputs.

==========  ===================================================  ==========================================
family      in the graph (outputs)                               after it, in the library
==========  ===================================================  ==========================================
YOLACT      loc, conf, coef, proto (priors beside: a constant)   decode, Fast NMS, assembly, crop
YOLACT++    the same, DCNv2 as ONNX ``DeformConv`` (opset 19);   the same; mask re-scoring with the
            ``maskiou_net`` as a second graph                     second graph on each kept mask
CondInst    class_logits, ltrb, centerness, controller,           FCOS decoding + NMS; each detection's
            mask_features                                        dynamic 1x1 network (no weights of its own)
BlendMask   ... attention, bases                                 FCOS decoding + NMS; RoIAlign + blend
CenterMask  ... p3, p4, p5; ``mask_head`` as a second graph      FCOS decoding + NMS; RoIAlign per box,
                                                                 then the second graph on the patches
SOLOv2      category_logits, kernels, mask_features              point NMS, kernels x features, Matrix NMS
Mask R-CNN  the whole model, one image per run (torchvision's    pasting each 28x28 mask into its box
            own ONNX support: RPN, NMS, RoIAlign, both heads)
==========  ===================================================  ==========================================

A *head* is a small network that ``detect`` runs on each detection (CenterMask's SAG-Mask head,
YOLACT++'s mask-IoU net). It has weights, so it cannot stay in PyTorch without the checkpoint; it
is exported as its own graph with a dynamic first axis (the detections), and the runner puts an
:class:`OnnxHead` where the model has the module, so the family's ``detect`` runs unchanged.
Why not CenterMask in one graph: the level each box is read from and the number of boxes are
data-dependent branches that tracing would freeze at the example's values.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..model.backbone import ModulatedDeformConv

OPSET = 17
DEFORMABLE_OPSET = 19           # ONNX's DeformConv exists from opset 19 (an onnxruntime without it refuses the file)

_FCOS = ("FCOS decoding: score sqrt(sigmoid(class_logits) x sigmoid(centerness)) above the candidate threshold, "
         "box = location -/+ ltrb, class-wise NMS (relatives.fcos.FCOSSegmenter.fcos_detect); ")
YOLACT_POSTPROCESSING = ("softmax(conf) over classes (column 0 = background); decode loc against the priors "
                         "(SSD variances 0.1, 0.2); class-specific Fast NMS; masks = sigmoid(proto @ coef^T) "
                         "cropped to each box and bilinearly upsampled to the image, > 0.5 "
                         "(yolact_edu.postprocess.detect)")


@dataclass(frozen=True)
class Head:
    """A per-detection sub-network of a family (see the module docstring).

    attribute: the model's attribute that ``detect`` calls ("mask_head", "maskiou_net").
    example: cfg, raw -> one detection's input shape (without the detection axis).
    """

    attribute: str
    example: Callable[[object, dict], tuple[int, ...]]


@dataclass(frozen=True)
class FamilyExport:
    """How one family is exported.

    per_image: the graph takes one image ([1,3,S,S]) and returns one image's outputs (Mask R-CNN:
        torchvision's detector exports for one image); else the batch is dynamic.
    constants: raw outputs that depend only on the config (YOLACT's priors), saved beside as .npy.
    heads: the :class:`Head` s exported as graphs of their own.
    postprocessing: what the outputs still need, in words (written to the JSON).
    """

    opset: int
    postprocessing: str
    per_image: bool = False
    constants: tuple[str, ...] = ()
    heads: tuple[Head, ...] = ()


def uses_deformable_convolution(model: nn.Module) -> bool:
    """True when the model holds a DCNv2 layer (YOLACT++'s backbone)."""
    return any(isinstance(m, ModulatedDeformConv) for m in model.modules())


def family_export(model: nn.Module) -> FamilyExport:
    """The :class:`FamilyExport` of ``model``'s family (YOLACT++ is YOLACT with DeformConv and a head)."""
    cfg = model.cfg
    family = cfg.family
    if family == "yolact":
        deformable = uses_deformable_convolution(model)
        heads = (Head("maskiou_net", lambda c, raw: (1, *raw["proto"].shape[1:3])),) if cfg.use_maskiou else ()
        rescoring = "; YOLACT++: each kept mask's score x its class's IoU predicted by OUT.maskiou_net.onnx"
        text = YOLACT_POSTPROCESSING + (rescoring if heads else "")
        return FamilyExport(DEFORMABLE_OPSET if deformable else OPSET, text, constants=("priors",), heads=heads)
    if family == "condinst":
        return FamilyExport(OPSET, _FCOS + "masks: each detection's dynamic network (3 1x1 convs whose weights are "
                            "the controller at its location) on mask_features + relative coordinates, x2 "
                            "upsampled, sigmoid, resized to the image (relatives.condinst)")
    if family == "blendmask":
        return FamilyExport(OPSET, _FCOS + "masks: RoIAlign of the bases in each box, blended by the per-pixel softmax "
                            "of its upsampled attention, sigmoid, pasted into the box (relatives.blendmask)")
    if family == "centermask":
        return FamilyExport(OPSET, _FCOS + "masks: each box RoIAligned from p3..p5 (level by box size), the "
                            "SAG-Mask head run per detection from OUT.mask_head.onnx (onnxruntime), its class's "
                            "channel, sigmoid, pasted into the box (relatives.centermask)",
                            heads=(Head("mask_head", lambda c, raw: (c.fpn_features, c.roi_size, c.roi_size)),))
    if family == "solov2":
        return FamilyExport(OPSET, "point NMS on sigmoid(category_logits); each candidate's mask = sigmoid(kernel . "
                            "mask_features); score x maskness; Matrix NMS; masks resized to the image "
                            "(relatives.solov2.SOLOv2Tiny.grid_detect)")
    if family == "maskrcnn":
        return FamilyExport(OPSET, "the whole model is in the graph, one image per run (RPN, NMS, RoIAlign, box and "
                            "mask heads; torchvision's ONNX support): boxes in input pixels, scores, labels "
                            "1-based, mask_probs [N,28,28]; outside: each mask pasted into its box at image size, "
                            "thresholded (relatives.maskrcnn.MaskRCNNTiny.detect)", per_image=True)
    raise ValueError(f"no ONNX export is defined for the {family!r} family ({cfg.name})")


# -- YOLACT++'s deformable convolution as ONNX DeformConv --------------------------------------------
def _deform_conv2d_symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                            dilation_h, dilation_w, groups, offset_groups, use_mask):
    """torchvision::deform_conv2d -> ONNX DeformConv (opset 19). The offsets' layout (dy, dx per
    kernel tap) is the same in both, so the tensors pass through unchanged."""
    inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op("DeformConv", *inputs, strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
                dilations_i=[dilation_h, dilation_w], group_i=groups, offset_group_i=offset_groups)


def register_deformable_convolution() -> None:
    """Teach the TorchScript exporter torchvision's deform_conv2d (it has no ONNX symbolic of its own)."""
    from torch.onnx.symbolic_helper import parse_args  # noqa: PLC0415 - only when exporting

    kinds = ("v",) * 5 + ("i",) * 8 + ("b",)        # tensors, then the ints of stride, padding, ..., then use_mask
    symbolic = parse_args(*kinds)(_deform_conv2d_symbolic)
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", symbolic, DEFORMABLE_OPSET)


# -- heads at run time ---------------------------------------------------------------------------------
class OnnxHead(nn.Module):
    """A per-detection head run by onnxruntime, in the place of the PyTorch module ``detect`` calls.

    session: its onnxruntime session; outputs: output name -> dims after the detection axis;
    returns_dict: the module returned a dict of those names (else its one tensor).
    """

    def __init__(self, session, outputs: dict[str, list[int]], returns_dict: bool):
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.outputs = outputs
        self.returns_dict = returns_dict

    def forward(self, x: torch.Tensor):
        if len(x) == 0:          # no detection: nothing to run (onnxruntime's convolutions refuse N = 0)
            found = {name: x.new_zeros((0, *dims), dtype=torch.float32) for name, dims in self.outputs.items()}
        else:
            values = self.session.run(list(self.outputs), {self.input_name: x.detach().float().cpu().numpy()})
            found = {name: torch.from_numpy(np.asarray(v)).to(x.device) for name, v in zip(self.outputs, values)}
        return found if self.returns_dict else next(iter(found.values()))


class HeadOutputs(nn.Module):
    """A head's forward as a tuple, the form the exporter traces (a dict's values in order)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor):
        out = self.head(x)
        return tuple(out.values()) if isinstance(out, dict) else out


__all__ = ["FamilyExport", "Head", "family_export", "OnnxHead", "HeadOutputs", "register_deformable_convolution",
           "uses_deformable_convolution", "OPSET", "DEFORMABLE_OPSET", "YOLACT_POSTPROCESSING"]
