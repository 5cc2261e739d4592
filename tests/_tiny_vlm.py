"""A tiny vision-language model built offline, for testing the in-process ``local/`` provider.

Everything is made here, from nothing downloaded: a byte-level BPE tokenizer (256 byte symbols
plus special tokens), a Pixtral image processor with 4-px patches, a chat template in the
``[INST]`` format and a LLaVA model (Pixtral vision tower + Llama text model, one layer each) with
random weights. ``build_tiny_vlm(path)`` saves it all with ``save_pretrained``, so that
``AutoProcessor.from_pretrained(path)`` and ``AutoModelForImageTextToText.from_pretrained(path)``
load it exactly like a checkpoint from the hub.

Why LLaVA-Pixtral and not Qwen2-VL: in transformers 5 every Qwen-VL processor needs a video
processor, which needs torchvision; this one does not. Like Qwen's, the Pixtral image processor
keeps the aspect ratio, so the number of image tokens follows the image size
(:func:`expected_image_tokens`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PATCH = 4
"""Vision patch side in pixels (Pixtral uses 16)."""
LONGEST_EDGE = 32
"""The image processor resizes images to fit within this many pixels."""
HIDDEN = 32
IMAGE_GAIN = 40.0
IMAGE_TOKEN = "[IMG]"
SPECIALS = ("<s>", "</s>", "<pad>", "[INST]", "[/INST]", IMAGE_TOKEN)

# Images become one [IMG] placeholder, which the processor expands to the image's token grid.
CHAT_TEMPLATE = (
    "<s>{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST]"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}[IMG]"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}[/INST]"
    "{% else %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>"
    "{% endif %}{% endfor %}"
)


def expected_image_tokens(width: int, height: int) -> int:
    """How many [IMG] tokens an image of this size becomes: one per 4x4 patch after the resize."""
    ratio = max(width, height) / LONGEST_EDGE
    if ratio > 1:  # shrink to fit LONGEST_EDGE (floored), then round up to whole patches
        width, height = math.floor(width / ratio), math.floor(height / ratio)
    return math.ceil(height / PATCH) * math.ceil(width / PATCH)


def build_tokenizer() -> Any:
    """A fast tokenizer: one token per byte, so any text encodes and decodes exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={s: i for i, s in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=list(SPECIALS[3:]),
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_vlm(path: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight tiny LLaVA-Pixtral checkpoint (model, processor, tokenizer)."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.pixtral.image_processing_pil_pixtral import (
        PixtralImageProcessorPil,
    )

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    image_processor = PixtralImageProcessorPil(
        size={"longest_edge": LONGEST_EDGE}, patch_size={"height": PATCH, "width": PATCH}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy="full",
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": LONGEST_EDGE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tok),
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
        },
        image_token_index=ids[IMAGE_TOKEN],
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        # At the default init scale the image barely moves the logits; amplify the projector so
        # that different images give different greedy answers.
        for param in model.model.multi_modal_projector.parameters():
            param.mul_(IMAGE_GAIN)
    gen = model.generation_config
    gen.bos_token_id = ids["<s>"]
    gen.eos_token_id = ids["</s>"]
    gen.pad_token_id = ids["<pad>"]
    gen.do_sample = False
    # Random weights would end answers at a random special token; keep every answer full length
    # so that tests can count tokens. (``force_short_answers`` does the opposite.)
    gen.suppress_tokens = sorted(ids.values())
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def force_short_answers(path: str | Path, n_tokens: int = 0) -> None:
    """Rewrite the generation config so every answer is ``n_tokens`` tokens then end-of-turn.

    Every token but ``</s>`` is suppressed, and ``min_new_tokens`` holds ``</s>`` back for the
    first ``n_tokens`` steps (greedy then takes token 0, byte ``!``). ``n_tokens=0``: empty answers.
    """
    cfg_path = Path(path) / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    vocab = json.loads((Path(path) / "config.json").read_text())["text_config"]["vocab_size"]
    eos = cfg["eos_token_id"]
    cfg["suppress_tokens"] = [i for i in range(vocab) if i != eos]
    cfg["min_new_tokens"] = n_tokens
    cfg_path.write_text(json.dumps(cfg))
