"""Wire types: one decoder for client frames, frames encoded once."""

import msgspec
import pytest

from chatd import wire


def test_decodes_every_client_frame_type():
    frames = {
        '{"type":"auth","token":"t"}': wire.Auth,
        '{"type":"join","order":"o","since":3}': wire.Join,
        '{"type":"send","order":"o","client_id":"c","text":"x","kind":"note"}': wire.Send,
        '{"type":"typing","order":"o","active":true}': wire.Typing,
        '{"type":"ping"}': wire.Ping,
    }
    for raw, kind in frames.items():
        assert isinstance(wire.decoder.decode(raw), kind)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"send","order":"o"}',
        '{"type":"nope"}',
        '{"type":"send","order":1,"client_id":"c","text":"x"}',
        '{"type":"send","order":"o","client_id":"c","text":"x","kind":"status"}',
    ],
)
def test_rejects_bad_frames(raw):
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        wire.decoder.decode(raw)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_frame_header_lengths(size):
    data = wire.frame(b"x" * size)
    assert data[0] == 0x81
    if size < 126:
        assert data[1] == size and len(data) == size + 2
    elif size < 65536:
        assert data[1] == 126 and int.from_bytes(data[2:4], "big") == size
    else:
        assert data[1] == 127 and int.from_bytes(data[2:10], "big") == size


def test_message_omits_status_unless_set():
    m = wire.Message("o", 1, 2, "text", wire.UserRef("u", "U", "buyer"), "hi", "c", [])
    assert b'"status"' not in wire.encode(m)
    m.status = "shipped"
    assert b'"status":"shipped"' in wire.encode(m)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"ping","x":' + "[" * 5000 + "]" * 5000 + "}",
        '{"type":"auth","token":"t","x":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}",
    ],
)
def test_deep_nesting_is_a_decode_error(raw):
    with pytest.raises(msgspec.DecodeError, match="nested too deeply"):
        wire.decode_json(raw)
    with pytest.raises(msgspec.DecodeError, match="nested too deeply"):
        wire.decode_json(raw, dict)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"history","order":"o","before":9223372036854775808}',
        '{"type":"history","order":"o","after":-1}',
        '{"type":"join","order":"o","limit":2147483648}',
        '{"type":"join","order":""}',
        '{"type":"send","order":"o","client_id":"","text":"x"}',
        '{"type":"send","order":"o","client_id":"c","text":"x","attachments":[""]}',
        '{"type":"set_status","order":"o","client_id":"c","status":""}',
        '{"type":"inbox","cursor":"' + "x" * 257 + '"}',
    ],
)
def test_bounds_are_checked_at_decode(raw):
    with pytest.raises(msgspec.ValidationError):
        wire.decode_json(raw)


def test_bounds_admit_their_extremes():
    f = wire.decode_json(
        '{"type":"history","order":"' + "o" * 200 + '","before":9223372036854775807,"limit":2147483647}'
    )
    assert f.before == 2**63 - 1 and f.limit == 2**31 - 1


@pytest.mark.parametrize(
    "raw, ref",
    [
        ('{"type":"send","order":"o","client_id":"c","text":1}', "c"),
        ('{"type":"send","order":"o","client_id":"' + "c" * 129 + '","text":"x"}', "o"),
        ('{"type":"join","order":7}', None),
        ("[1]", None),
        ('{"client_id":' + "[" * 5000 + "]" * 5000 + "}", None),
        ("not json", None),
    ],
)
def test_ref_of(raw, ref):
    assert wire.ref_of(raw) == ref
