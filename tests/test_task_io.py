"""UserTask and its zip export/import: exact round trip; unsafe or malformed zips -> InputError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from playground.interactive.imaging import MAX_FILE_BYTES, InputError
from playground.interactive.task_io import (
    FORMAT,
    MAX_CLASSES,
    MAX_ENTRIES,
    MAX_EXAMPLES_PER_CLASS,
    MAX_IMPORT_PIXELS,
    MAX_MANIFEST_BYTES,
    MAX_NAME_LENGTH,
    MAX_ZIP_BYTES,
    UserTask,
    export_task_zip,
    import_task_zip,
)


def make_task(shots=(1, 3, 5), seed=0) -> UserTask:
    rng = np.random.default_rng(seed)
    names = ["alpha", "βeta ✓", "gamma"][: len(shots)]
    examples = [[rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(k)] for k in shots]
    return UserTask(list(names), examples)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


GLYPH_PNG = png(255 - np.pad(np.full((10, 10), 255, np.uint8), 9))  # dark square on white, 28x28


def build_zip(entries, manifest=None, attrs=None) -> bytes:
    """A zip from (name, bytes) pairs, with task.json first when ``manifest`` is given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        items = list(entries)
        if manifest is not None:
            items.insert(
                0, ("task.json", json.dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest)
            )
        for name, data in items:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if attrs and name in attrs:
                info.external_attr = attrs[name] << 16
            zf.writestr(info, data)
    return buf.getvalue()


def mark_encrypted(data: bytes, name: str) -> bytes:
    """Set the 'encrypted' flag of entry ``name`` in its local and central headers."""
    out = bytearray(data)
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = out.find(signature)
        while pos != -1:
            n = int.from_bytes(out[pos + name_len_at : pos + name_len_at + 2], "little")
            if out[pos + name_at : pos + name_at + n] == name.encode():
                out[pos + flag_at] |= 0x1
            pos = out.find(signature, pos + 4)
    return bytes(out)


def manifest_for(*classes) -> dict:
    return {"format": FORMAT, "version": 1, "classes": [{"name": n, "files": f} for n, f in classes]}


TWO_CLASSES = manifest_for(("a", ["a/0.png"]), ("b", ["b/0.png"]))
TWO_FILES = [("a/0.png", GLYPH_PNG), ("b/0.png", GLYPH_PNG)]


# --------------------------------------------------------------------------- UserTask


def test_user_task_helpers_and_support():
    task = make_task((2, 1))
    assert task.n_way == 2 and task.shots == [2, 1]
    assert task.problems() == [] and task.is_ready
    x, y, names = task.support()
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1] and y.dtype == torch.long
    assert names == ["alpha", "βeta ✓"]
    assert torch.equal(x[2, 0], torch.from_numpy(task.examples[1][0]).float() / 255)


@pytest.mark.parametrize(
    "names,shots,word",
    [
        (["a"], [2], "at least 2 classes"),
        ([], [], "at least 2 classes"),
        (["a", "b"], [1, 0], "'b' has no examples"),
        (["a", "A "], [1, 1], "same name"),
        (["a", "  "], [1, 1], "class 2 has no name"),
        (["a", "b"], [1, MAX_EXAMPLES_PER_CLASS + 1], "at most"),
        ([f"c{i}" for i in range(MAX_CLASSES + 1)], [1] * (MAX_CLASSES + 1), "at most 20 classes"),
    ],
)
def test_problems_are_reported(names, shots, word):
    task = UserTask(list(names), [[np.zeros((28, 28), np.uint8)] * k for k in shots])
    assert any(word in p for p in task.problems()), task.problems()
    assert not task.is_ready
    with pytest.raises(InputError, match="not ready"):
        task.support()


def test_problems_report_malformed_examples_and_mismatch():
    task = UserTask(["a", "b"], [[np.zeros((28, 28), np.uint8)], [np.zeros((28, 28), np.float32)]])
    assert any("example 1 of class 'b'" in p for p in task.problems())
    task = UserTask(["a", "b", "c"], [[np.zeros((28, 28), np.uint8)]] * 2)
    assert any("3 class names but 2" in p for p in task.problems())


# --------------------------------------------------------------------------- round trip


def test_round_trip_is_exact():
    task = make_task((1, 3, 5))
    back = import_task_zip(export_task_zip(task))
    assert back.class_names == task.class_names
    assert back.shots == task.shots
    for ours, theirs in zip(back.examples, task.examples):
        for a, b in zip(ours, theirs):
            assert a.dtype == np.uint8 and np.array_equal(a, b)


def test_export_layout_and_determinism():
    task = make_task((2, 1))
    data = export_task_zip(task)
    assert data == export_task_zip(task)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("task.json"))
        assert manifest["format"] == FORMAT and manifest["version"] == 1
        assert manifest["classes"][0]["files"] == ["class_00/example_00.png", "class_00/example_01.png"]
        stored = np.asarray(Image.open(io.BytesIO(zf.read("class_01/example_00.png"))))
    assert np.array_equal(stored, 255 - task.examples[1][0])  # dark ink on white, like Omniglot


def test_incomplete_task_round_trips_and_keeps_its_problems():
    task = UserTask(["only", ""], [[np.zeros((28, 28), np.uint8)], []])
    back = import_task_zip(export_task_zip(task))
    assert back.class_names == ["only", ""] and back.shots == [1, 0]
    assert not back.is_ready


def test_export_refuses_malformed_task():
    with pytest.raises(InputError, match="28x28"):
        export_task_zip(UserTask(["a", "b"], [[np.zeros((28, 28), np.uint8)], [np.zeros((10, 10), np.uint8)]]))
    with pytest.raises(InputError, match="class names"):
        export_task_zip(UserTask(["a"], []))


def test_zip_of_the_task_folder_imports():
    entries = [("mytask/" + n, d) for n, d in TWO_FILES]
    data = build_zip([("mytask/task.json", json.dumps(TWO_CLASSES).encode())] + entries)
    task = import_task_zip(data)
    assert task.class_names == ["a", "b"] and task.shots == [1, 1]


def test_larger_images_are_preprocessed_on_import():
    img = Image.new("L", (105, 105), 255)
    ImageDraw.Draw(img).line([(20, 20), (80, 80)], fill=0, width=4)
    data = build_zip([("a/0.png", png(np.asarray(img))), ("b/0.png", GLYPH_PNG)], TWO_CLASSES)
    task = import_task_zip(data)
    arr = task.examples[0][0]
    assert arr.shape == (28, 28) and arr.dtype == np.uint8 and arr.max() > 200 and arr[0, 0] == 0


# --------------------------------------------------------------------------- refused imports


def _big_zeros(n):
    return bytes(n)


def _random_bytes(n):
    """Incompressible, so only the size limit (not the zip-bomb ratio check) can refuse it."""
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def _lying_size(data: bytes, entry: str, size: int) -> bytes:
    """The zip with the central directory declaring ``size`` bytes for ``entry`` instead of the truth."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_len].decode() == entry:
            return data[: at + 24] + size.to_bytes(4, "little") + data[at + 28 :]
        at += 4


BAD_ZIPS = {
    "not a zip": (b"PK\x03\x04 definitely not a zip", "not a zip"),
    "png not zip": (GLYPH_PNG, "not a zip"),
    "empty": (b"", "not a zip"),
    "no manifest": (build_zip(TWO_FILES), "no task.json"),
    "manifest not json": (build_zip(TWO_FILES, b"{not json"), "not valid JSON"),
    "manifest not utf8": (build_zip(TWO_FILES, b"\xff\xfe\x00"), "not valid JSON"),
    "manifest deep": (build_zip(TWO_FILES, b"[" * 50_000), "not valid JSON"),
    "manifest a list": (build_zip(TWO_FILES, b"[1, 2]"), "format marker"),
    "wrong format": (build_zip(TWO_FILES, {**TWO_CLASSES, "format": "something-else"}), "format marker"),
    "newer version": (build_zip(TWO_FILES, {**TWO_CLASSES, "version": 99}), "version 99"),
    "bad version": (build_zip(TWO_FILES, {**TWO_CLASSES, "version": "1"}), "version"),
    "no classes": (build_zip(TWO_FILES, manifest_for()), "no classes"),
    "classes not list": (build_zip(TWO_FILES, {**TWO_CLASSES, "classes": {"a": 1}}), "list of classes"),
    "class not dict": (build_zip(TWO_FILES, {**TWO_CLASSES, "classes": ["a", "b"]}), "not described"),
    "name not str": (build_zip(TWO_FILES, manifest_for((3, ["a/0.png"]), ("b", ["b/0.png"]))), "name"),
    "files not list": (build_zip(TWO_FILES, manifest_for(("a", "a/0.png"), ("b", ["b/0.png"]))), "file names"),
    "too many classes": (
        build_zip(TWO_FILES, manifest_for(*[(f"c{i}", []) for i in range(MAX_CLASSES + 1)])),
        "21 classes",
    ),
    "too many examples": (
        build_zip(TWO_FILES, manifest_for(("a", [f"x{i}.png" for i in range(MAX_EXAMPLES_PER_CLASS + 1)]))),
        f"{MAX_EXAMPLES_PER_CLASS + 1} examples",
    ),
    "missing file": (build_zip(TWO_FILES[:1], TWO_CLASSES), "b/0.png.*missing"),
    "listed twice": (build_zip(TWO_FILES, manifest_for(("a", ["a/0.png"]), ("b", ["a/0.png"]))), "twice"),
    "not an image": (build_zip([TWO_FILES[0], ("b/0.png", b"just text")], TWO_CLASSES), "b/0.png is not an image"),
    "blank image": (
        build_zip([TWO_FILES[0], ("b/0.png", png(np.full((50, 50), 255, np.uint8)))], TWO_CLASSES),
        "b/0.png is blank",
    ),
    "truncated image": (build_zip([TWO_FILES[0], ("b/0.png", GLYPH_PNG[:40])], TWO_CLASSES), "b/0.png"),
    "dotdot entry": (build_zip(TWO_FILES + [("../evil.png", GLYPH_PNG)], TWO_CLASSES), "unsafe path.*traversal"),
    "nested dotdot": (build_zip(TWO_FILES + [("a/../../evil", b"x")], TWO_CLASSES), "unsafe path"),
    "absolute entry": (build_zip(TWO_FILES + [("/etc/evil", b"x")], TWO_CLASSES), "unsafe path.*absolute"),
    "backslash entry": (build_zip(TWO_FILES + [("a\\..\\evil", b"x")], TWO_CLASSES), "unsafe path.*backslash"),
    "drive entry": (build_zip(TWO_FILES + [("C:/evil", b"x")], TWO_CLASSES), "unsafe path.*drive"),
    "dotdot in manifest": (
        build_zip(TWO_FILES, manifest_for(("a", ["a/0.png"]), ("b", ["../b/0.png"]))),
        "unsafe path",
    ),
    "absolute in manifest": (
        build_zip(TWO_FILES, manifest_for(("a", ["a/0.png"]), ("b", ["/b/0.png"]))),
        "unsafe path",
    ),
    "symlink": (
        build_zip(TWO_FILES + [("link", b"/etc/passwd")], TWO_CLASSES, attrs={"link": 0o120777}),
        "symlink",
    ),
    "symlink listed": (
        build_zip(TWO_FILES, TWO_CLASSES, attrs={"b/0.png": 0o120777}),
        "symlink",
    ),
    "fifo": (build_zip(TWO_FILES + [("pipe", b"")], TWO_CLASSES, attrs={"pipe": 0o010644}), "special file"),
    "encrypted": (mark_encrypted(build_zip(TWO_FILES, TWO_CLASSES), "b/0.png"), "password"),
    "bomb total": (build_zip(TWO_FILES + [("pad.bin", _big_zeros(21 * 1024 * 1024))], TWO_CLASSES), "zip bomb"),
    "bomb ratio": (build_zip(TWO_FILES + [("pad.bin", _big_zeros(4 * 1024 * 1024))], TWO_CLASSES), "zip bomb"),
    "name too long": (
        build_zip(TWO_FILES, manifest_for(("x" * (MAX_NAME_LENGTH + 1), ["a/0.png"]), ("b", ["b/0.png"]))),
        f"at most {MAX_NAME_LENGTH} characters",
    ),
    "manifest too large": (
        build_zip(TWO_FILES, {**TWO_CLASSES, "padding": _random_bytes(MAX_MANIFEST_BYTES // 2 + 1).hex()}),
        "task.json is too large",
    ),
    "image too large": (
        build_zip([TWO_FILES[0], ("b/0.png", GLYPH_PNG + _random_bytes(MAX_FILE_BYTES))], TWO_CLASSES),
        "b/0.png is too large",
    ),
    "declared size a lie": (_lying_size(build_zip(TWO_FILES, TWO_CLASSES), "b/0.png", 10), "b/0.png.*damaged"),
    "too many entries": (
        build_zip(TWO_FILES + [(f"f{i}", b"") for i in range(MAX_ENTRIES)], TWO_CLASSES),
        "2003 entries",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_bad_zip_refused(case):
    data, pattern = BAD_ZIPS[case]
    with pytest.raises(InputError, match=pattern):
        import_task_zip(data)


def test_duplicate_entry_names_refused():
    with pytest.warns(UserWarning, match="Duplicate"):
        data = build_zip(TWO_FILES + [("a/0.png", GLYPH_PNG)], TWO_CLASSES)
    with pytest.raises(InputError, match="twice"):
        import_task_zip(data)


def test_oversized_zip_refused():
    with pytest.raises(InputError, match="too large"):
        import_task_zip(bytes(MAX_ZIP_BYTES + 1))


def test_wrong_type_refused():
    with pytest.raises(InputError, match="not a file's contents"):
        import_task_zip("task.zip")


def test_one_class_imports_but_is_not_ready():
    task = import_task_zip(build_zip(TWO_FILES[:1], manifest_for(("a", ["a/0.png"]))))
    assert task.n_way == 1 and any("at least 2 classes" in p for p in task.problems())


def test_one_limit_on_examples_for_adding_and_importing():
    """Drawing and uploading (add_example) and import all stop at the same number a class."""
    glyph = 255 - np.asarray(Image.open(io.BytesIO(GLYPH_PNG)), dtype=np.uint8)
    task = UserTask(["a", "b"], [[], []])
    for _ in range(MAX_EXAMPLES_PER_CLASS):
        task.add_example(0, glyph)
    assert task.room(0) == 0 and task.room(1) == MAX_EXAMPLES_PER_CLASS
    with pytest.raises(InputError, match=f"already has {MAX_EXAMPLES_PER_CLASS} examples"):
        task.add_example(0, glyph)
    assert task.shots == [MAX_EXAMPLES_PER_CLASS, 0]
    too_many = [f"a/{i}.png" for i in range(MAX_EXAMPLES_PER_CLASS + 1)]
    data = build_zip(
        [(f, GLYPH_PNG) for f in too_many] + TWO_FILES[1:], manifest_for(("a", too_many), ("b", ["b/0.png"]))
    )
    with pytest.raises(InputError, match=f"at most {MAX_EXAMPLES_PER_CLASS} are allowed"):
        import_task_zip(data)
    assert MAX_EXAMPLES_PER_CLASS == 5  # what the app promises: one to five examples a class


def test_add_class_picks_a_free_name_and_stops_at_the_limit():
    task = UserTask(["A", "c"], [[], []])
    assert task.add_class() == "B" and task.add_class() == "D"
    while task.n_way < MAX_CLASSES:
        task.add_class()
    with pytest.raises(InputError, match=f"at most {MAX_CLASSES} classes"):
        task.add_class()


def test_import_bounds_the_pixels_decoded_in_all(monkeypatch):
    """Tiny PNGs of huge blank images: each under the per-image limit, together far over the budget."""
    side = 6000  # 36 megapixels, a few kilobytes as a one-bit PNG
    big = Image.new("1", (side, side), 1)
    ImageDraw.Draw(big).rectangle([side // 2 - 200, 500, side // 2 + 200, side - 500], fill=0)
    buf = io.BytesIO()
    big.save(buf, "PNG")
    assert side * side < MAX_IMPORT_PIXELS < 2 * side * side
    files = [(f"c{i}/0.png", buf.getvalue()) for i in range(4)]
    data = build_zip(files, manifest_for(*[(f"c{i}", [f"c{i}/0.png"]) for i in range(4)]))
    import playground.interactive.task_io as task_io

    decoded = []
    real = task_io.decode_image
    monkeypatch.setattr(task_io, "decode_image", lambda raw, name: decoded.append(name) or real(raw, name))
    with pytest.raises(InputError, match=f"more than {MAX_IMPORT_PIXELS / 1e6:g} megapixels in all"):
        import_task_zip(data, "plus.zip")
    assert decoded == ["c0/0.png"]  # refused from the second image's header, before decoding it


# --------------------------------------------------------------------------- fuzz


def _ok_or_input_error(data: bytes) -> None:
    try:
        task = import_task_zip(data)
    except InputError as exc:
        assert str(exc)
        return
    assert isinstance(task, UserTask) and len(task.class_names) == len(task.examples)
    for examples in task.examples:
        for arr in examples:
            assert arr.shape == (28, 28) and arr.dtype == np.uint8


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _ok_or_input_error(data)


_VALID = export_task_zip(make_task((1, 2)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    st.integers(0, 10**6),
)
def test_fuzz_mutated_task_zip(flips, cut):
    data = bytearray(_VALID)
    for pos, value in flips:
        data[pos % len(data)] = value
    _ok_or_input_error(bytes(data[: max(1, cut % (len(data) + 1))]))


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ),
    st.sampled_from(["whole", "classes", "class", "files"]),
)
def test_fuzz_manifest_contents(junk, where):
    """Valid zip, arbitrary JSON where the manifest or a part of it should be."""
    manifest = manifest_for(("a", ["a/0.png"]), ("b", ["b/0.png"]))
    if where == "whole":
        manifest = junk
    elif where == "classes":
        manifest["classes"] = junk
    elif where == "class":
        manifest["classes"][1] = junk
    else:
        manifest["classes"][1]["files"] = junk
    _ok_or_input_error(build_zip(TWO_FILES, manifest))
