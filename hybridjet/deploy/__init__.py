"""Deployment: finished runs in formats other software runs (ONNX)."""
