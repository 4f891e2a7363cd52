"""JSON-lines files: reading has no side effects; a torn last line is skipped, and ended by the next append."""

from __future__ import annotations

from imagen_demo.bench.jsonl import append_jsonl, read_jsonl


def test_reading_a_torn_file_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "manifest.jsonl"
    torn = b'{"key": "a"}\n{"key": "half a line from a kil'
    path.write_bytes(torn)
    assert read_jsonl(path) == [{"key": "a"}]
    assert path.read_bytes() == torn


def test_an_append_after_a_torn_line_keeps_every_whole_row(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"key": "a"}\n{"key": "half')
    append_jsonl(path, [{"key": "b"}, {"key": "c"}])
    append_jsonl(path, [{"key": "d"}])
    assert read_jsonl(path) == [{"key": "a"}, {"key": "b"}, {"key": "c"}, {"key": "d"}]
    append_jsonl(tmp_path / "new.jsonl", [{"key": "e"}])
    assert (tmp_path / "new.jsonl").read_text() == '{"key": "e"}\n'
