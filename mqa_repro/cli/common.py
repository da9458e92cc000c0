"""What every subcommand shares: the one override syntax, ``--config.KEY=VALUE``, and how errors
reach the user.

``Parser`` is argparse with the overrides collected on the side: ``--config.train.learning_rate=0.02``
or ``--config.train.learning_rate 0.02``, repeatable, applied in order (``config.apply_overrides``
parses each value by the type of the field it replaces and names the closest fields when a key is
unknown). Each subcommand says what its overrides apply to (a config file, a run's saved config,
every run of a preset) in its help.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

PREFIX = '--config.'


def stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
  """argparse plus ``--config.KEY=VALUE`` overrides (``parse`` returns them separately)."""

  def __init__(self, prog: str, description: str | None = None, *, overrides: str | None,
               **kwargs):
    """`overrides`: what the overrides apply to, for the help; None = this command has no config,
    and any ``--config.*`` is refused saying so."""
    kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
    epilog = kwargs.pop('epilog', None)
    if overrides:
      note = (f'--config.KEY=VALUE (repeatable) overrides {overrides}, e.g. '
              f'--config.model.attention_impl=pallas.')
      epilog = f'{epilog}\n\n{note}' if epilog else note
    super().__init__(prog=prog, description=description, epilog=epilog, **kwargs)
    self.overrides_apply_to = overrides

  def parse(self, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """(flags, overrides as '--config.KEY=VALUE' strings in the order given)."""
    args, rest = self.parse_known_args(list(argv))
    overrides, bad, i = [], [], 0
    while i < len(rest):
      item = rest[i]
      if item.startswith(PREFIX):
        key, sep, value = item[len(PREFIX):].partition('=')
        if not sep:                       # --config.KEY VALUE
          if i + 1 >= len(rest):
            self.error(f'{item} needs a value: {item}=VALUE')
          value, i = rest[i + 1], i + 1
        overrides.append(f'{PREFIX}{key}={value}')
      else:
        bad.append(item)
      i += 1
    if bad:
      self.error(f'unrecognized arguments: {" ".join(bad)} (config overrides look like '
                 f'--config.train.learning_rate=0.02)')
    if overrides and not self.overrides_apply_to:
      self.error(f'{self.prog} has no config to override (got {overrides[0]})')
    return args, overrides

  def check_at_least(self, **values: tuple[float | None, float]) -> None:
    """Refuse a numeric flag below its bound: ``check_at_least(beam=(args.beam, 1))``."""
    for name, (value, low) in values.items():
      if value is not None and value < low:
        self.error(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def check_overrides(config, overrides: Sequence[str], parser: argparse.ArgumentParser) -> None:
  """Apply `overrides` to a copy of `config` and validate it, so a bad key or value stops the
  command before anything runs."""
  from mqa_repro import config as cfg
  trial = config.copy_and_resolve_references()
  try:
    cfg.apply_overrides(trial, overrides)
    cfg.validate(trial)
  except ValueError as e:
    parser.error(str(e))
