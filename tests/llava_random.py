"""LLaVA folders with random weights, in the published layout (tests and bench/annotate.py).

`full=False`: a tiny model (2-layer CLIP vision tower at 16 px, 1-layer Llama) for CPU tests.
`full=True`: the LLaVA-1.5-7B architecture (CLIP ViT-L/14 at 336 px, Llama-2-7B-sized
language model, 32064-token vocabulary) for timing; weights do not change the cost.
The tokenizer is a small BPE trained here (no download) plus LLaVA's special tokens; for the
full model its ids simply use the first few hundred of the 32064 embedding rows.
"""
from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Describe this real-world image and its style as a long detailed caption.",
    "Include details about the person's facial expression and describe face attributes.",
    "Ignore the background and clothing information for the caption. USER: ASSISTANT:",
    "A close-up photograph of a smiling woman with short hair, soft light, looking at the camera.",
]


def build_tokenizer():
    """A PreTrainedTokenizerFast (byte-level BPE trained on a few sentences) with `<image>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})


def build_random_llava(full: bool = False, dtype=None):
    """(model, processor): a LlavaForConditionalGeneration with random weights and its processor."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = build_tokenizer()
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if full:
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                  image_size=336, patch_size=14, projection_dim=768)
        text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
        size, patch = 336, 14
    else:
        vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=16, patch_size=8, projection_dim=16)
        text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
        size, patch = 16, 8
    text.pad_token_id, text.bos_token_id, text.eos_token_id = (tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<s>", "</s>"))
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(0)
    if dtype is not None:
        with torch.device("cuda" if full and torch.cuda.is_available() else "cpu"):
            model = LlavaForConditionalGeneration(config).to(dtype)
    else:
        model = LlavaForConditionalGeneration(config)
    if full:  # ids past the small tokenizer get zero logits: greedy decoding keeps to ids it can decode (else
        with torch.no_grad():  # random logits over 32064 rows give empty captions, refused by the caption stage)
            model.get_output_embeddings().weight[len(tokenizer):] = 0
    model.generation_config.pad_token_id = text.pad_token_id
    model.generation_config.eos_token_id = text.eos_token_id
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    return model.eval(), processor


def save_random_llava(folder: str | Path, full: bool = False, dtype=None) -> Path:
    """Build and save a random LLaVA folder (model + processor) loadable by `LlavaCaptioner`;
    `dtype` (full only): built in it, on the GPU when there is one."""
    folder = Path(folder)
    model, processor = build_random_llava(full, dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
