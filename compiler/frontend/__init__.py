"""Front ends: model files in, rduflow IR out (``onnx``: models exported by PyTorch and others)."""
