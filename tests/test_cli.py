"""The command line: one override syntax in every subcommand, and the dispatcher."""

import subprocess
import sys

import pytest

from mqa_repro import cli
from mqa_repro.cli.common import Parser


def test_overrides_in_both_forms_in_order():
  p = Parser('x', overrides='a config')
  p.add_argument('--flag', default=None)
  args, overrides = p.parse(['--config.model.window=4', '--flag', 'v', '--config.train.seed', '3'])
  assert args.flag == 'v' and overrides == ['--config.model.window=4', '--config.train.seed=3']


def test_unknown_flags_and_configless_commands_are_refused(capsys):
  p = Parser('x', overrides='a config')
  with pytest.raises(SystemExit):
    p.parse(['--bogus'])
  assert 'config overrides look like --config.' in capsys.readouterr().err
  with pytest.raises(SystemExit):
    Parser('y', overrides=None).parse(['--config.model.window=4'])
  assert 'has no config to override' in capsys.readouterr().err


@pytest.mark.parametrize('command', ['params', 'data', 'train', 'decode', 'evaluate', 'bench',
                                     'reproduce', 'convert', 'parallel-check'])
def test_every_subcommand_documents_config_overrides(command, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main([command, '--help'])
  assert exit_info.value.code == 0
  assert '--config.KEY=VALUE' in capsys.readouterr().out


def test_params_takes_overrides():
  out = subprocess.run([sys.executable, '-m', 'mqa_repro.cli', 'params', '--size', 'tiny',
                        '--config.model.window=4'], capture_output=True, text=True, check=True)
  rows = [line.split() for line in out.stdout.splitlines()[1:]]
  assert rows and all(r[6] == '4' for r in rows)


def test_old_override_flags_name_their_replacement(capsys):
  with pytest.raises(SystemExit):
    cli.main(['data', 'vocab', '--task', 'lm', '--workdir', 'w', '--override', 'data.seed=1'])
  assert '--config.KEY=VALUE' in capsys.readouterr().err
  assert cli.main(['nope']) == 2
