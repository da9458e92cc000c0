"""A tour of the Python API, end to end in under a minute on a laptop CPU: build a table row, train
it a few steps on real text, load the run back, translate two sentences and score them.

    MQA_REPRO_DATA=../shared/data python examples/api_tour.py [WORKDIR]

$MQA_REPRO_DATA holds the small real files (a Europarl sample, newstest2013 / 2014). Thirty steps
of a tiny model translate badly: the point is the calls, which are the ones a real run uses
(``mqa-repro train`` trains through the same Trainer; tests/test_api.py runs this file).
"""

import sys
import tempfile
import time
from pathlib import Path

import mqa_repro
from mqa_repro.data import sources
from mqa_repro.experiment import TEXT_DATA
from mqa_repro.training.trainer import Trainer

start = time.time()
workdir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix='api_tour_'))
data_dir = sources.resolve_data_dir(None)
if data_dir is None or not (data_dir / 'wmt14_en_de').is_dir():
  sys.exit(f'api_tour: set MQA_REPRO_DATA to the directory of the real text files (got {data_dir})')

# 1. A row of Table 1 as a model: its config, Flax module and parameter shapes (nothing allocated).
model = mqa_repro.build_model('wmt_mqa', size='tiny')
print(f'{model.config.name}: {model.config.label}, {model.num_params:,} parameters')

# 2. Train it a few steps on real text: the Europarl sample, the vocabulary trained on it.
config = model.config
config.data.source = 'text'                       # files, relative to $MQA_REPRO_DATA
config.data.update(TEXT_DATA['translate'])
config.train.update(num_train_steps=30, learning_rate=0.1, log_every=10, eval_every=0,
                    checkpoint_every=30, tensorboard=False, progress=False)
summary = Trainer.from_config(config, workdir, log=lambda m: None).train_and_evaluate()
print(f"trained {summary['step']} steps: loss {summary['train_loss']:.3f}")

# 3. The run as an object: its config, parameters and tokenizer from the newest checkpoint.
run = mqa_repro.load_run(workdir)
english = [text for _, text in sources.read_lines(data_dir / 'wmt14_en_de' / 'newstest2014.en')][:2]
german = [text for _, text in sources.read_lines(data_dir / 'wmt14_en_de' / 'newstest2014.de')][:2]

# 4. Translate (beam search), with the two best of each and their scores.
hypotheses = run.translate(english, beam=2)
for source, best in zip(english, run.translate(english, beam=2, nbest=2)):
  print(f'{source[:60]!r} ->', ', '.join(f'{text[:40]!r} ({score:.2f})' for text, score in best))

# 5. Score: the model's perplexity on the reference translations, and BLEU of its own.
ppl = run.perplexity(list(zip(english, german)))
print(f"ln(PPL) per subword on the references: {ppl['ln_ppl_per_subword']:.3f} over {ppl['tokens']} "
      f"tokens ({ppl['scored']} of {len(german)} pairs fit the tiny model's position table)")
print(f"BLEU (tok intl): {mqa_repro.bleu(hypotheses, german)['intl']['score']:.2f}")
print(f'api tour done in {time.time() - start:.0f} s')
