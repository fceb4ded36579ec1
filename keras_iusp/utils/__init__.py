"""Small helpers every layer may use: atomic writes, the error types, path comparison,
run provenance, and TensorFlow's start-up noise filter.
"""
