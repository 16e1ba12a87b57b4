import pytest

from qwenvl_edge.errors import FormatError
from qwenvl_edge.tokenizer import Tokenizer
from qwenvl_edge.vocab import SPECIAL_TOKENS, SpecialIds, encoding, read_ranks, synthetic_ranks, write_ranks


def test_special_ids_of_the_real_vocabulary_size():
    # The published ids (docs/model.md 6.2) follow from 151643 BPE ranks.
    s = SpecialIds(151643)
    assert (s.endoftext, s.im_start, s.im_end) == (151643, 151644, 151645)
    assert s.id_of("<|extra_204|>") == 151850
    assert (s.ref_start, s.box_start) == (151851, 151853)
    assert (s.img_start, s.img_end, s.img_pad) == (151857, 151858, 151859)
    assert s.n_vocab == 151860
    assert len(SPECIAL_TOKENS) == 217


def test_real_vocabulary_reads_and_encodes_the_spec_vectors(real_vocab):
    ranks = read_ranks(real_vocab)
    assert len(ranks) == 151643
    enc = encoding(ranks)
    assert enc.n_vocab == 151860
    assert enc.encode_ordinary("\n") == [198]
    assert enc.encode_ordinary("You are a helpful assistant.") == [2610, 525, 264, 10950, 17847, 13]
    assert enc.encode_ordinary("1000") == [16, 15, 15, 15]  # digits split one by one
    assert enc.encode_ordinary("你好") == [108386]


def test_write_then_read_round_trips(tmp_path):
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"\xe4\xbd": 257}
    write_ranks(tmp_path / "v.tiktoken", ranks)
    assert read_ranks(tmp_path / "v.tiktoken") == ranks


def test_crlf_copies_read_the_same(tmp_path):
    ranks = {bytes([b]): b for b in range(256)}
    write_ranks(tmp_path / "v.tiktoken", ranks)
    crlf = (tmp_path / "v.tiktoken").read_bytes().replace(b"\n", b"\r\n")
    (tmp_path / "crlf.tiktoken").write_bytes(crlf)
    assert read_ranks(tmp_path / "crlf.tiktoken") == ranks


@pytest.mark.parametrize("content, message", [
    (b"not base64!! 0\n", "line 1"),
    (b"YQ== 0\nYQ== 1\n", "appears twice"),
    (b"YQ== 0\nYg== 2\n", "not exactly 0..1"),
    (b"YQ== 0\n", "256 single bytes"),
])
def test_bad_vocabulary_files_are_refused_with_a_reason(tmp_path, content, message):
    (tmp_path / "bad.tiktoken").write_bytes(content)
    with pytest.raises(FormatError, match=message):
        read_ranks(tmp_path / "bad.tiktoken")


def test_missing_vocabulary_file_names_the_path(tmp_path):
    with pytest.raises(FormatError, match="missing.tiktoken"):
        read_ranks(tmp_path / "missing.tiktoken")


def test_filler_ranks_never_come_out_of_text(tmp_path):
    ranks = synthetic_ranks(1000)
    assert sorted(ranks.values()) == list(range(1000)) and len(set(ranks)) == 1000
    write_ranks(tmp_path / "v.tiktoken", ranks)
    tok = Tokenizer.from_file(tmp_path / "v.tiktoken")
    text = "Describe this image, ünïcode 中文 too."
    ids = tok.encode(text)
    assert len(ids) == len(text.encode()) and max(ids) < 256
    assert tok.decode(ids) == text
