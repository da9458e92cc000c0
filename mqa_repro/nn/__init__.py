"""The model: attention (attention.py) with its decode-step code selection (decode_impl.py) and
cache (kv_cache.py), and the Transformer built from them (transformer.py). The Pallas kernels the
decode steps can use are in mqa_repro.kernels."""
