"""A reproduction of Shazeer (2019), "Fast Transformer Decoding: One Write-Head is All You Need", in
JAX / Flax: multi-head, multi-query, grouped-query and local attention in one layer.

The Python API (api.py; imported on first use, so ``import mqa_repro`` stays light):

  load_run(workdir, step=None, *, overrides=(), mesh=None, log=...) -> Run
      Run.config, .params, .tokenizer, .task
      Run.translate(lines, beam=4, *, alpha=None, batch_size=None, nbest=0)
      Run.continue_text(prompts, max_new_tokens=64, beam=1, *, alpha=None, batch_size=None, nbest=0)
      Run.perplexity(lines_pairs_or_path, batch_size=None)
  build_model(row, size='paper', overrides=()) -> Model (.config, .module, .abstract_params,
                                                         .num_params, .init(seed))
  bleu(hypotheses, references)

The command line is ``mqa-repro`` (mqa_repro/cli/); docs/extending.md says where a change goes.
"""

__all__ = ['Model', 'Run', 'bleu', 'build_model', 'load_run']


def __getattr__(name: str):
  if name in __all__:
    from mqa_repro import api
    return getattr(api, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
