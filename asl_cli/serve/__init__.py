"""A trained checkpoint put to use: `inference` (a checkpoint as a ready model, batched prediction,
evaluation metrics: `asl predict`, `asl evaluate`) and `export` (ONNX graphs verified with
onnxruntime: `asl export`). Training never imports them."""
