"""Tiny random-weight diffusers pipelines for offline tests.

Built from inline configs (the way diffusers' own fast tests build theirs), saved with
``save_pretrained`` and then loaded back by the code under test, so the real loading path
runs without any model hub. Everything is seeded, so the same call writes the same weight
bytes on every run (the weights hash of a folder is stable).

* ``build_tiny_sd(folder)``: a Stable Diffusion 1.x-style text-to-image pipeline
  (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, a locally written CLIP BPE
  tokenizer, DDIM). About 0.1 s to build and save on 2 cores.
* ``build_tiny_svd(folder)``: a Stable Video Diffusion image-to-video pipeline
  (UNetSpatioTemporalConditionModel, AutoencoderKLTemporalDecoder,
  CLIPVisionModelWithProjection, Euler).

torch/diffusers/transformers are imported inside the functions: collecting the test
module must not pay for them when the tests are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _bytes_to_unicode() -> dict[int, str]:
    # The byte -> printable-character table of GPT-2/CLIP byte-level BPE.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_clip_tokenizer_files(folder: Path) -> Path:
    """A complete (if merge-free) CLIP BPE vocabulary: every byte, with and without the
    end-of-word marker, plus the two special tokens. Any text tokenizes to ids < 517.

    Written as files and loaded with ``from_pretrained(folder)``: in transformers 5,
    ``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently ignores the files."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    # A few merges so the BPE path is exercised, not only single characters; a merge's
    # result must itself be in the vocabulary (the tokenizers library checks).
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n")]
    tokens = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    tokens += [a + b for a, b in merges]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Save a tiny SD-style text-to-image pipeline into ``folder``; returns ``folder``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = write_clip_tokenizer_files(folder.parent / (folder.name + "-tokenizer-src"))
    # model_max_length: CLIP pads/truncates to 77 tokens; without it the limit is "infinite".
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=77)

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16, intermediate_size=24,
        layer_norm_eps=1e-5, num_attention_heads=2, num_hidden_layers=2, vocab_size=520,
        max_position_embeddings=77, projection_dim=16,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_tiny_svd(folder: Path, seed: int = 0, num_frames: int = 4) -> Path:
    """Save a tiny Stable Video Diffusion (image-to-video) pipeline into ``folder``."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    # The spatio-temporal blocks hard-code 32 norm groups: channels must be multiples of 32.
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=16,
        num_attention_heads=(2, 4),
        projection_class_embeddings_input_dim=3 * 8,
        addition_time_embed_dim=8,
        num_frames=num_frames,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
        layers_per_block=1,
    )
    torch.manual_seed(seed + 2)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2,
        # SVD resizes the conditioning image to 224x224 before the encoder: 7x7 patches.
        image_size=224, intermediate_size=24, patch_size=32,
    ))
    feature_extractor = CLIPImageProcessor(crop_size=32, size=32)
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
        sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", trained_betas=None, use_karras_sigmas=True,
    )
    pipe = StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_tiny_ip_adapter(folder: Path, sd_folder: Path, seed: int = 0) -> Path:
    """A random IP-Adapter for the tiny SD UNet in ``sd_folder``, laid out like
    h94/IP-Adapter: ``models/ip-adapter_tiny.safetensors`` (keys ``image_proj.*`` and
    ``ip_adapter.<n>.to_{k,v}_ip.weight``, numbered 1, 3, 5, ... over the UNet's attention
    processors as diffusers' loader expects) and ``models/image_encoder/``."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = UNet2DConditionModel.from_pretrained(str(sd_folder / "unet"))
    cross = unet.config.cross_attention_dim
    blocks = list(unet.config.block_out_channels)
    embed_dim = 16  # the image encoder's projection_dim
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.2

    tensors: dict[str, torch.Tensor] = {
        # "plain" IP-Adapter image projection: 4 tokens of cross_attention_dim
        "image_proj.proj.weight": rand(4 * cross, embed_dim),
        "image_proj.proj.bias": rand(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        if not name.endswith("attn1.processor"):
            tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, cross)
            tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, cross)
            key_id += 2
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(models / "ip-adapter_tiny.safetensors"))
    torch.manual_seed(seed + 3)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=embed_dim, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, intermediate_size=24, patch_size=32,  # 224: the default CLIP crop
    ))
    encoder.save_pretrained(str(models / "image_encoder"))
    return folder


def entry_doc(id_: str, **fields: Any) -> dict[str, Any]:
    """A ModelEntry document for tiny random test weights."""
    doc = {
        "schema": "ModelEntry.1", "id": id_, "licence": "test weights (random)",
        "provenance": "random weights built by tests/tiny_models.py",
        "usage_classes": ["experiment"], "dtype": "float32", "steps": 2, "guidance": 5.0,
        "width": 64, "height": 64,
    }
    doc.update(fields)
    return doc


# -- tiny random-weight audio models (transformers), for tests/test_audio_backends.py ------

_TTS_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789'-.,!?")


def build_tiny_vits(folder: Path, seed: int = 0, sampling_rate: int = 16000) -> Path:
    """A tiny VITS (MMS-TTS layout): ``VitsModel`` + a character ``VitsTokenizer`` with
    ``vocab.json``. Random weights speak noise, but the real loading, tokenising,
    duration prediction and vocoder paths all run."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(["<pad>", " ", *_TTS_CHARS])}
    src = folder.parent / (folder.name + "-vocab.json")
    src.write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = VitsTokenizer(vocab_file=str(src), add_blank=True, normalize=True, phonemize=False,
                              pad_token="<pad>", unk_token="<pad>")
    torch.manual_seed(seed)
    model = VitsModel(VitsConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ffn_dim=16, flow_size=8, spectrogram_bins=9, window_size=4,
        prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=8, upsample_initial_channel=16,
        # 64 samples per frame: a sentence is a few tenths of a second at 16 kHz
        upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]], sampling_rate=sampling_rate,
    ))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _char_tokenizer(eos: bool) -> Any:
    """A tokenizers-backed character tokenizer (what a SpeechT5-style model reads),
    built inline: the real SpeechT5 tokenizer is SentencePiece, a package not installed."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(["<s>", "<pad>", "</s>", "<unk>", "\u2581", *_TTS_CHARS])}
    tk = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "\u2581")])
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    if eos:
        tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_tiny_speecht5(folder: Path, seed: int = 0) -> dict[str, Path]:
    """A tiny SpeechT5 text-to-speech model in ``folder/model``, its HiFi-GAN vocoder in
    ``folder/vocoder`` and an 8-value speaker x-vector ``folder/speaker.npy``."""
    import numpy as np
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    tokenizer = _char_tokenizer(eos=True)
    torch.manual_seed(seed)
    model = SpeechT5ForTextToSpeech(SpeechT5Config(
        vocab_size=len(tokenizer), hidden_size=16, encoder_layers=1, encoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=16,
        num_mel_bins=8, speech_decoder_prenet_units=16, speech_decoder_prenet_layers=1,
        speech_decoder_postnet_layers=1, speech_decoder_postnet_units=16,
        speech_decoder_postnet_kernel=3, speaker_embedding_dim=8, reduction_factor=2,
        max_text_positions=256, max_speech_positions=512, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, decoder_start_token_id=2, feat_extract_conv_dim=(8,),
        feat_extract_conv_stride=(2,), feat_extract_conv_kernel=(3,), num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
    ))
    model.save_pretrained(str(folder / "model"))
    tokenizer.save_pretrained(str(folder / "model"))
    torch.manual_seed(seed + 1)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, upsample_initial_channel=16, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        sampling_rate=16000, normalize_before=False,
        initializer_range=0.3,  # default-scale random weights output ~1e-7: "silence"
    ))
    vocoder.save_pretrained(str(folder / "vocoder"))
    np.save(folder / "speaker.npy", np.random.default_rng(seed).standard_normal(8).astype(np.float32))
    return {"model": folder / "model", "vocoder": folder / "vocoder", "speaker": folder / "speaker.npy"}


def build_tiny_musicgen(folder: Path, seed: int = 0, sampling_rate: int = 16000) -> Path:
    """A tiny MusicGen (T5 text encoder, EnCodec at 50 frames/s with 2 codebooks of 64
    random codes, one decoder layer) and its processor: a ``T5Tokenizer`` built inline from
    a Unigram vocabulary of letters and the EnCodec feature extractor. The codebooks are
    random (as in ``build_tiny_bark``), so the decoded audio depends on the generated
    codes: another seed or prompt gives other audio."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5Tokenizer,
    )

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in letters] + [("\u2581" + c, -2.5) for c in letters]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    torch.manual_seed(seed)
    codebook = 64
    config = MusicgenConfig(
        text_encoder=T5Config(vocab_size=len(vocab), d_model=16, d_ff=32, num_layers=1,
                              num_heads=2, d_kv=8, decoder_start_token_id=0),
        # hop 4*4*5*4 = 320 samples: 50 frames/s at 16 kHz (as the real 32 kHz model's 640)
        audio_encoder=EncodecConfig(sampling_rate=sampling_rate, hidden_size=16, num_filters=4,
                                    upsampling_ratios=[4, 4, 5, 4], codebook_size=codebook,
                                    codebook_dim=16, target_bandwidths=[0.6], num_lstm_layers=1,
                                    audio_channels=1),
        decoder=MusicgenDecoderConfig(vocab_size=codebook, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, ffn_dim=32, num_codebooks=2,
                                      max_position_embeddings=512, pad_token_id=codebook,
                                      bos_token_id=codebook, audio_channels=1),
    )
    model = MusicgenForConditionalGeneration(config)
    # EnCodec's codebooks start at zero (they are k-means centroids in a trained codec):
    # zero codebooks would decode every code to the same waveform, so the audio would not
    # depend on the prompt or the seed. Drawn after torch.manual_seed(seed): byte-stable.
    for layer in model.audio_encoder.quantizer.layers:
        layer.codebook.embed.normal_()
        layer.codebook.embed_avg.copy_(layer.codebook.embed)
    gen = model.generation_config
    gen.decoder_start_token_id = codebook
    gen.pad_token_id = codebook
    gen.do_sample = True
    gen.guidance_scale = 3.0
    gen.max_length = 512
    model.save_pretrained(str(folder))
    MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=sampling_rate),
                      tokenizer=tokenizer).save_pretrained(str(folder))
    return folder


def build_tiny_bark(folder: Path, seed: int = 0) -> Path:
    """A tiny Bark (``BarkModel``: semantic, coarse and fine acoustics sub-models of one
    layer each, an EnCodec at 24 kHz / 75 frames/s with 4 codebooks of 64 codes) and its
    ``BarkProcessor`` with a word-piece ``BertTokenizer`` built inline (the real one is
    bert-base-multilingual-cased), plus one speaker preset, ``v2/tiny_speaker``, laid out as
    ``suno/bark`` ships them (``speaker_embeddings_path.json`` + ``speaker_embeddings/``).

    The token layout follows the real checkpoint at small scale: 32 semantic tokens and
    their end token (32); text ids offset past them; coarse codes after the semantic
    tokens, one block of 64 per codebook. The generation config (``generation_config.json``
    as on the hub) caps the semantic model at 16 new tokens and shrinks the coarse and
    fine windows: a sentence is at most 24 frames (0.32 s) of audio, a two-sentence line
    takes about 0.1 s on the CPU. Random weights may end a sentence on any step, even the
    first (which leaves EnCodec no frames to decode: the backend refuses that sentence,
    naming the beat): ``semantic_min_new_tokens`` in ``call_args`` fixes the length. Each semantic token is 75/49.9 EnCodec frames of 320
    samples."""
    import numpy as np
    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        BertTokenizer,
        EncodecConfig,
        GenerationConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    # transformers 5's BertTokenizer takes the vocabulary itself (``vocab_file=`` is ignored).
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_TTS_CHARS, *("##" + c for c in _TTS_CHARS)]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(pieces)}, do_lower_case=True)
    n_text = len(pieces)
    semantic, codes, n_codebooks = 32, 64, 4  # the real model: 10_000, 1024, 8
    text_offset = semantic + 8  # past the semantic tokens, their end token and 7 unused
    # Wider random weights than the default 0.02: with near-uniform logits every sampled
    # token would depend on the seed alone, not on the text or the speaker preset.
    sub = {"num_layers": 1, "num_heads": 2, "hidden_size": 16, "initializer_range": 0.5}
    torch.manual_seed(seed)
    model = BarkModel(BarkConfig(
        # 257 positions of text + semantic history + the infer token, then new tokens
        semantic_config=BarkSemanticConfig(**sub, block_size=320, input_vocab_size=text_offset + n_text + 4,
                                           output_vocab_size=text_offset).to_dict(),
        coarse_acoustics_config=BarkCoarseConfig(**sub, block_size=256,
                                                 input_vocab_size=semantic + 2 * codes + 8,
                                                 output_vocab_size=semantic + 2 * codes).to_dict(),
        # the fine model's heads are tied to its embeddings: codes + the pad code
        fine_acoustics_config=BarkFineConfig(**sub, block_size=128, input_vocab_size=codes + 1,
                                             output_vocab_size=codes + 1, n_codes_total=n_codebooks,
                                             n_codes_given=1).to_dict(),
        # hop 8*5*4*2 = 320 samples: 75 frames/s at 24 kHz, as the real codec;
        # 4 quantizers = 1.8 kbps / (75 frames/s * 6 bits)
        codec_config=EncodecConfig(sampling_rate=24000, hidden_size=16, num_filters=4,
                                   upsampling_ratios=[8, 5, 4, 2], codebook_size=codes, codebook_dim=16,
                                   target_bandwidths=[1.8], num_lstm_layers=1).to_dict(),
    ))
    # BarkModel.generate reads these nested dicts (BarkGenerationConfig itself cannot be
    # saved in transformers 5: it skips GenerationConfig.__init__).
    model.generation_config = GenerationConfig(
        semantic_config={"eos_token_id": semantic, "max_new_tokens": 16, "do_sample": True,
                         "semantic_vocab_size": semantic, "text_encoding_offset": text_offset,
                         "text_pad_token": text_offset + n_text, "semantic_infer_token": text_offset + n_text + 3,
                         "max_input_semantic_length": 256},  # the processor pads text to 256
        coarse_acoustics_config={"do_sample": True, "n_coarse_codebooks": 2,
                                 "coarse_semantic_pad_token": semantic + 2 * codes,
                                 "coarse_infer_token": semantic + 2 * codes + 2, "max_coarse_input_length": 64,
                                 "max_coarse_history": 120, "sliding_window_len": 30},
        fine_acoustics_config={"n_fine_codebooks": n_codebooks, "max_fine_input_length": 128,
                               "max_fine_history_length": 32},
        sample_rate=24000, codebook_size=codes,
    )
    # EnCodec's codebooks start at zero (they are k-means centroids in a trained codec):
    # zero codebooks would decode every code to the same waveform.
    for layer in model.codec_model.quantizer.layers:
        layer.codebook.embed.normal_()
        layer.codebook.embed_avg.copy_(layer.codebook.embed)
    model.save_pretrained(str(folder))
    BarkProcessor(tokenizer=tokenizer).save_pretrained(str(folder))
    # One speaker preset: a semantic prompt and the coarse (2 codebooks) and fine (all 4)
    # codes of the same 24 frames.
    rng = np.random.default_rng(seed)
    name = "v2/tiny_speaker"
    (folder / "speaker_embeddings" / "v2").mkdir(parents=True, exist_ok=True)
    fine = rng.integers(0, codes, size=(n_codebooks, 24))
    arrays = {"semantic_prompt": rng.integers(0, semantic, size=16), "coarse_prompt": fine[:2], "fine_prompt": fine}
    files = {}
    for key, value in arrays.items():
        rel = f"speaker_embeddings/{name}_{key}.npy"
        np.save(folder / rel, value.astype(np.int64))
        files[key] = rel
    (folder / "speaker_embeddings_path.json").write_text(
        json.dumps({"repo_or_path": str(folder), name: files}), encoding="utf-8")
    return folder
