"""Pallas kernels for the decode path (``config.model.attention_impl = 'pallas'``)."""

from mqa_repro.kernels.decode_attention import decode_attention

__all__ = ['decode_attention']
