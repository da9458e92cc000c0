"""Results records -> tables and plots (what `mqa-repro tables` writes)."""
