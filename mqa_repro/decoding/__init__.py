"""Decoding a trained model: the searches, and text in / text out (``text.decode_lines``)."""
