"""Running a trained model outside PyTorch: :mod:`.onnx` exports YOLACT's network to ONNX and runs it
with onnxruntime, post-processed by the same code as in PyTorch."""
