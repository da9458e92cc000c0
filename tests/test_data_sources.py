"""Raw text sources: formats, and every bad input -> an error naming file and line, or a counted skip."""

import gzip
import lzma
from pathlib import Path

import pytest

from mqa_repro.data import sources
from mqa_repro.data.sources import ReadStats, read_monolingual, read_parallel


def write(path: Path, text: str | bytes) -> Path:
  path.write_bytes(text.encode('utf-8') if isinstance(text, str) else text)
  return path


def pair(tmp_path: Path, en: str, de: str, prefix: str = 'corpus') -> Path:
  write(tmp_path / f'{prefix}.en', en)
  write(tmp_path / f'{prefix}.de', de)
  return tmp_path / prefix


# ---- formats -------------------------------------------------------------------------------------


def test_prefix_pair_and_explicit_paths(tmp_path):
  p = pair(tmp_path, 'Hello world\nGood morning\n', 'Hallo Welt\nGuten Morgen\n')
  expected = [('Hello world', 'Hallo Welt'), ('Good morning', 'Guten Morgen')]
  assert list(read_parallel(p)) == expected
  assert list(read_parallel((f'{p}.en', f'{p}.de'))) == expected


def test_tsv(tmp_path):
  f = write(tmp_path / 'x.tsv', 'Hello world\tHallo Welt\nYes\tJa\n')
  assert list(read_parallel(f)) == [('Hello world', 'Hallo Welt'), ('Yes', 'Ja')]


def test_compressed_files_and_prefix_lookup(tmp_path):
  with lzma.open(tmp_path / 'c.en.xz', 'wb') as f:
    f.write('one\ntwo\n'.encode())
  with gzip.open(tmp_path / 'c.de.gz', 'wb') as f:
    f.write('eins\nzwei\n'.encode())
  assert list(read_parallel(tmp_path / 'c')) == [('one', 'eins'), ('two', 'zwei')]
  with lzma.open(tmp_path / 'mono.txt.xz', 'wb') as f:
    f.write(b'a b c\nd e\n')
  assert list(read_monolingual(tmp_path / 'mono.txt')) == ['a b c', 'd e']  # finds the .xz


def test_line_endings_bom_and_unicode_separators(tmp_path):
  # CRLF, a BOM, no final newline, and U+2028 / U+0085 inside a sentence (str.splitlines would split
  # there and misalign every later line).
  p = pair(tmp_path, '\ufeffFirst\r\nSecond\u2028half\r\nThird\x85x',
           'Erste\nZweite\nDritte')
  assert list(read_parallel(p)) == [('First', 'Erste'), ('Second\u2028half', 'Zweite'),
                                    ('Third\x85x', 'Dritte')]
  assert sources.count_lines(f'{p}.en') == 3


def test_resolve_data_dir(monkeypatch, tmp_path):
  monkeypatch.delenv('MQA_REPRO_DATA', raising=False)
  assert sources.resolve_data_dir(None) is None
  assert sources.resolve_data_dir('') is None
  monkeypatch.setenv('MQA_REPRO_DATA', str(tmp_path))
  assert sources.resolve_data_dir(None) == tmp_path
  assert sources.resolve_data_dir('/some/flag') == Path('/some/flag')  # the flag wins


def test_relative_paths_resolve_against_data_dir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'data' / 'wmt').mkdir(parents=True)
  pair(tmp_path / 'data' / 'wmt', 'a\n', 'b\n', prefix='newstest')
  assert sources.resolve_text_path('wmt/newstest', tmp_path / 'data') == str(tmp_path / 'data/wmt/newstest')
  assert sources.resolve_text_path('nowhere/x', tmp_path / 'data') == 'nowhere/x'


# ---- errors naming the file and the line ---------------------------------------------------------


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.txt'):
    read_monolingual(tmp_path / 'nope.txt')
  write(tmp_path / 'half.en', 'x\n')
  with pytest.raises(FileNotFoundError, match=r'half\.de'):
    read_parallel(tmp_path / 'half')
  with pytest.raises(FileNotFoundError, match=r'missing\.tsv'):
    read_parallel(tmp_path / 'missing.tsv')


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
  p = pair(tmp_path, 'a\nb\nc\n', 'x\ny\n')
  with pytest.raises(ValueError) as e:
    read_parallel(p)  # raised at the call, before any pair is produced
  msg = str(e.value)
  assert f'{p}.en has 3 lines' in msg and f'{p}.de has 2 lines' in msg


def test_non_utf8_names_file_and_line(tmp_path):
  f = write(tmp_path / 'bad.txt', b'fine\nalso fine\nbroken \xff byte\n')
  with pytest.raises(ValueError, match=rf'{f}:3: not valid UTF-8'):
    list(read_monolingual(f))
  p = pair(tmp_path, 'ok\nok\n', 'ok\n', prefix='p')
  write(tmp_path / 'p.de', b'ok\n\xc3(\n')
  with pytest.raises(ValueError, match=rf'{tmp_path}/p.de:2'):
    list(read_parallel(p))


@pytest.mark.parametrize('line', ['no tab here', 'one\ttwo\tthree'])
def test_tsv_needs_exactly_one_tab(tmp_path, line):
  f = write(tmp_path / 'x.tsv', f'good\tgut\n{line}\n')
  with pytest.raises(ValueError, match=rf'{f}:2: expected exactly one TAB'):
    list(read_parallel(f))


# ---- counted skips, never misalignment -----------------------------------------------------------


def test_empty_line_on_one_side_drops_the_pair(tmp_path):
  p = pair(tmp_path, 'one\n\nthree\nfour\n', 'eins\nzwei\n   \nvier\n')
  stats, messages = ReadStats(), []
  got = list(read_parallel(p, stats=stats, log=messages.append))
  assert got == [('one', 'eins'), ('four', 'vier')]   # 'zwei' is not paired with 'three'
  assert (stats.kept, stats.empty, stats.too_long) == (2, 2, 0)
  assert len(messages) == 1 and 'skipped 2 with an empty line (first at line 2)' in messages[0]


def test_over_long_lines_are_counted_skips(tmp_path):
  p = pair(tmp_path, 'short\n' + 'x' * 50 + '\nok\n', 'kurz\nlang\nok\n')
  stats, messages = ReadStats(), []
  assert list(read_parallel(p, max_chars=10, stats=stats, log=messages.append)) == [
      ('short', 'kurz'), ('ok', 'ok')]
  assert stats.too_long == 1 and 'longer than 10 characters (first at line 2)' in messages[0]
  f = write(tmp_path / 'm.txt', 'a\n\n' + 'y' * 20 + '\nb\n')
  stats = ReadStats()
  assert list(read_monolingual(f, max_chars=10, stats=stats, log=messages.append)) == ['a', 'b']
  assert (stats.kept, stats.empty, stats.too_long) == (2, 1, 1)


def test_skips_go_to_the_logger_by_default(tmp_path, caplog):
  f = write(tmp_path / 'x.tsv', 'a\tb\n\n\tc\n')
  with caplog.at_level('WARNING', logger='mqa_repro.data.sources'):
    assert list(read_parallel(f)) == [('a', 'b')]
  assert 'skipped 2 with an empty line' in caplog.text and str(f) in caplog.text


def test_no_skip_no_message(tmp_path):
  messages = []
  list(read_monolingual(write(tmp_path / 'm.txt', 'a\nb\n'), log=messages.append))
  assert messages == []


def test_fingerprint_changes_with_content(tmp_path):
  f = write(tmp_path / 'a.txt', 'x\n')
  before = sources.fingerprint_files([f])
  write(f, 'y\n')
  assert sources.fingerprint_files([f]) != before
