"""Exporters of a trained VLANet: SavedModel (TF Serving), TFLite, TF-TRT, ONNX."""
