"""Face detectors (5-landmark SCRFD/RetinaFace-style ONNX models)."""

from arcface.detect.base import Detections, Detector
from arcface.detect.nms import iou_matrix, nms
from arcface.detect.scrfd import SCRFD

__all__ = ["Detections", "Detector", "SCRFD", "iou_matrix", "nms"]
