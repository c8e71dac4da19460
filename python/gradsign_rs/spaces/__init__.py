"""Search spaces: architecture encodings and ONNX builders for NAS benchmarks.

Import a space by its module (`from gradsign_rs.spaces import nb201`); nothing is registered on import.
"""
