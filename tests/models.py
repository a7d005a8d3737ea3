"""Tiny random-weight models built through each library's own serialisation.

They load through the same code path real weights take (for demucs:
``demucs.pretrained.get_model(name, repo=folder)``), so tests exercise the
real loader, checksum checks and bag handling without downloading anything.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path


def tiny_htdemucs(sources=("drums", "bass", "other", "vocals"), samplerate=44100,
                  audio_channels=2, seed=0, segment=None):
    """A randomly initialised, very small ``HTDemucs`` (a few hundred kB).

    Args:
        sources: the stem names the model separates.
        samplerate: the model's sample rate.
        audio_channels: channels the model takes and returns.
        seed: torch seed for the random weights (same seed, same model).
        segment: training segment in seconds (HTDemucs's default, 10, if None).
    """
    import torch
    from demucs.htdemucs import HTDemucs

    kwargs = dict(sources=list(sources), audio_channels=audio_channels, samplerate=samplerate,
                  channels=4, bottom_channels=0, t_layers=1, t_heads=1, nfft=4096, dconv_comp=2)
    if segment is not None:
        kwargs["segment"] = segment
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = HTDemucs(**kwargs)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


def demucs_package(model) -> dict:
    """The dict ``demucs.states.serialize_model`` builds, without omegaconf.

    ``training_args`` is what ``OmegaConf.to_container`` returns (a plain
    dict); ``load_model`` never reads it.
    """
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    return {"klass": model.__class__, "args": args, "kwargs": kwargs,
            "state": get_state(model, None, half=False), "training_args": {}}


def save_demucs_package(package: dict, folder: Path, sig: str) -> Path:
    """Write ``<sig>-<8 hex of sha256>.th`` as ``demucs.states.save_with_checksum`` does."""
    import torch

    buf = io.BytesIO()
    torch.save(package, buf)
    data = buf.getvalue()
    path = Path(folder) / f"{sig}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def write_tiny_demucs_repo(folder, name="tiny", sources=("drums", "bass", "other", "vocals"),
                           samplerate=44100, audio_channels=2, bag=1, weights=None,
                           segment=None) -> Path:
    """A demucs repo folder holding a tiny random HTDemucs (or a bag of them).

    Writes one ``<sig>-<hash>.th`` per member and ``<name>.yaml`` listing
    them (plus ``weights:`` when given), the layout demucs's ``LocalRepo`` /
    ``BagOnlyRepo`` read.

    Args:
        folder: where to write (created if missing).
        name: the model's name (the yaml file's stem).
        bag: how many members (each with different random weights).
        weights: per-member, per-source weights (``bag`` rows of
            ``len(sources)``); demucs's default (all ones) if None.

    Returns:
        ``folder`` as a Path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sigs = []
    for index in range(bag):
        model = tiny_htdemucs(sources, samplerate, audio_channels, seed=index, segment=segment)
        sig = hashlib.sha256(f"{name}:{index}".encode()).hexdigest()[:8]
        save_demucs_package(demucs_package(model), folder, sig)
        sigs.append(sig)
    lines = [f"models: [{', '.join(repr(s) for s in sigs)}]"]
    if weights is not None:
        lines.append("weights: [" + ", ".join(
            "[" + ", ".join(f"{float(w)!r}" for w in row) + "]" for row in weights) + "]")
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder


# -- MusicGen (audiocraft) ----------------------------------------------------------
MUSICGEN_RATE = 32000
_N_Q, _BINS, _DIM = 4, 256, 64  # 4 codebooks as released; >= 250 bins for top_k=250


# musicgen-small's shapes (audiocraft's released config): compute equals the real model's
SMALL = {"layers": 24, "dim": 1024, "heads": 16, "bins": 2048, "seanet_dim": 128,
         "filters": 64, "lstm": 2}
TINY = {"layers": 2, "dim": _DIM, "heads": 4, "bins": _BINS, "seanet_dim": 16, "filters": 4,
        "lstm": 1}


def _musicgen_compression_cfg(size: dict) -> dict:
    """EnCodec at 32 kHz, hop 8*5*4*4 = 640 (50 Hz frames, as released)."""
    seanet = {"dimension": size["seanet_dim"], "channels": 1, "causal": False,
              "n_filters": size["filters"],
              "n_residual_layers": 1, "ratios": [8, 5, 4, 4], "activation": "ELU",
              "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {},
              "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 7,
              "dilation_base": 2, "pad_mode": "constant", "true_skip": True, "compress": 2,
              "lstm": size["lstm"], "disable_norm_outer_blocks": 0, "encoder": {},
              "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                          "final_activation_params": None}}
    # kmeans_init False: untrained k-means codebooks would stay all zeros (silence)
    rvq = {"n_q": _N_Q, "q_dropout": False, "bins": size["bins"], "decay": 0.99,
           "kmeans_init": False,
           "kmeans_iters": 50, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
           "orthogonal_reg_active_codes_only": False}
    return {"device": "cpu", "sample_rate": MUSICGEN_RATE, "channels": 1,
            "compression_model": "encodec",
            "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": MUSICGEN_RATE,
                        "channels": 1, "causal": False, "renormalize": False},
            "seanet": seanet, "rvq": rvq, "no_quant": {}}


def _musicgen_lm_cfg(melody: bool, size: dict, t5: bool = False, stereo: bool = False) -> dict:
    """audiocraft's musicgen_lm config; text through a lut/noop conditioner (no download)
    or, with ``t5``, through T5 named 't5-base' as in the released models."""
    layers, dim, heads = size["layers"], size["dim"], size["heads"]
    description = {"model": "lut", "lut": {"n_bins": 1024, "dim": dim, "tokenizer": "noop"}}
    if t5:
        description = {"model": "t5", "t5": {"name": "t5-base", "finetune": False,
                                             "word_dropout": 0.0, "normalize_text": False}}
    if melody:  # as chroma2music: the melody's chroma is prepended
        conditioners = {"self_wav": {"model": "chroma_stem", "chroma_stem": {
            "sample_rate": MUSICGEN_RATE, "n_chroma": 12, "radix2_exp": 14, "argmax": True,
            "match_len_on_eval": False, "eval_wavs": None, "n_eval_wavs": 100,
            "cache_path": None}}, "description": description}
        fuse = {"prepend": ["self_wav", "description"], "cross": []}
        dropout = {"args": {"active_on_eval": False}, "text": {}, "wav": {"self_wav": 0.5}}
    else:
        conditioners = {"description": description}
        fuse = {"prepend": [], "cross": ["description"]}
        dropout = {}
    transformer = {
        "dim": dim, "num_heads": heads, "num_layers": layers, "hidden_scale": 4, "n_q": _N_Q,
        "card": size["bins"], "dropout": 0.0, "emb_lr": None, "activation": "gelu", "norm_first": True,
        "bias_ff": False, "bias_attn": False, "bias_proj": False, "past_context": None,
        "causal": True, "custom": False, "memory_efficient": True,  # as the released configs
        "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin",
        "xpos": False, "checkpointing": "none", "weight_init": "gaussian",
        "depthwise_init": "current", "zero_bias_init": True, "norm": "layer_norm",
        "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
        "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False}
    n_q = 2 * _N_Q if stereo else _N_Q  # stereo: each codebook twice, left and right
    transformer["n_q"] = n_q
    delays = [k // 2 for k in range(n_q)] if stereo else list(range(n_q))
    return {
        "device": "cpu", "dtype": "float32", "sample_rate": MUSICGEN_RATE,
        "channels": 2 if stereo else 1,
        "interleave_stereo_codebooks": {"use": stereo, "per_timestep": False},
        "compression_model_n_q": None, "dataset": {"segment_duration": 30},
        "lm_model": "transformer_lm",
        "codebooks_pattern": {"modeling": "delay", "delay": {
            "delays": delays, "flatten_first": 0, "empty_initial": 0}},
        "transformer_lm": transformer,
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": dropout,
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
                  "sum": [], "input_interpolate": [], **fuse},
        "conditioners": conditioners,
    }


def write_tiny_musicgen(folder, melody: bool = False, seed: int = 0, size: dict = TINY,
                        t5: bool = False, stereo: bool = False) -> Path:
    """A random MusicGen in audiocraft's released checkpoint format (``size=SMALL``:
    musicgen-small's shapes, for benchmarks; ``t5``: conditioned through a tiny T5
    written to ``<folder>/t5-base``, as ``models pull`` lays the real one out).

    ``state_dict.bin`` and ``compression_state_dict.bin``, each
    ``torch.save({'best_state', 'xp.cfg' (OmegaConf YAML), 'version', 'exported'})``,
    built with audiocraft's own builders and loaded by ``MusicGen.get_pretrained(folder)``.
    """
    import torch
    from omegaconf import OmegaConf

    from bridge.engines.audiocraft_compat import import_musicgen

    import_musicgen()
    import audiocraft
    from audiocraft.models import builders

    import demucs.pretrained

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from bridge.engines.musicgen import _text_encoder_from

    real = demucs.pretrained.get_model
    # A melody conditioner builds demucs's 'htdemucs' (not saved in the checkpoint):
    # a tiny one here; the engine serves it from the model store when loading.
    demucs.pretrained.get_model = lambda name, repo=None: tiny_htdemucs()
    if t5:
        write_tiny_t5(folder / "t5-base")
    try:
        with torch.random.fork_rng(devices=[]), _text_encoder_from(folder, None):
            torch.manual_seed(seed)
            compression_cfg = OmegaConf.create(_musicgen_compression_cfg(size))
            compression = builders.get_compression_model(compression_cfg)
            lm_cfg = OmegaConf.create(_musicgen_lm_cfg(melody, size, t5, stereo))
            lm = builders.get_lm_model(lm_cfg)
    finally:
        demucs.pretrained.get_model = real
    for name, model, cfg in (("compression_state_dict.bin", compression, compression_cfg),
                             ("state_dict.bin", lm, lm_cfg)):
        torch.save({"best_state": model.state_dict(), "xp.cfg": OmegaConf.to_yaml(cfg),
                    "version": audiocraft.__version__, "exported": True}, folder / name)
    return folder


def write_tiny_t5(folder) -> Path:
    """A 1-layer T5 encoder with t5-base's width (768: audiocraft checks the name's
    dimension) and a 30-token tokenizer, saved the way the hub holds t5-base
    (config.json, model.safetensors, tokenizer.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    folder = Path(folder)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    vocab += [(c, -2.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    fast = T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>",
                           pad_token="<pad>", extra_ids=0)
    fast.save_pretrained(folder)
    config = T5Config(vocab_size=len(vocab), d_model=768, d_kv=8, d_ff=32, num_layers=1,
                      num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    return folder
