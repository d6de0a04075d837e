"""Running a trained model outside PyTorch: :mod:`.onnx` exports any family's network to ONNX and runs
it with onnxruntime, post-processed by the family's own ``detect`` (:mod:`.onnx_families` says what
each family puts in the graph)."""
