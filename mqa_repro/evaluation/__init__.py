"""Scores: BLEU / chrF / the paired bootstrap (bleu.py), perplexity (perplexity.py), and both for a
trained run on one eval split (split.py)."""
