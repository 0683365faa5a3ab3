"""The local `transformers` backend end to end, with tiny random Qwen2-VL and Qwen2.5-VL models built offline.

No weights can be downloaded here, so the test builds everything a Hub checkpoint would hold: a byte-level
BPE tokenizer trained on the spot (with Qwen's special tokens), Qwen2-VL's image processor, a chat
template, and a 2-layer model of width 32 from a config; all saved into a folder that `--model` loads
through `AutoProcessor` / `AutoModelForImageTextToText`, as it would a real checkpoint. The random model's
garbage answers exercise parsing, retries and the failure report; a forced good answer checks decoding.
"""

import json

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402

from sarm.annotate.backends import Frame, TransformersBackend  # noqa: E402
from sarm.cli import main  # noqa: E402
from sarm.labels.annotations import read_spans  # noqa: E402
from sarm.labels.schema import Span  # noqa: E402
from tests.sarm.annotate.fake_vlm import make_dataset  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# per family: the processor class, the model class, the config class, a tiny vision tower
FAMILIES = {
    "qwen2-vl": ("Qwen2VLProcessor", "Qwen2VLForConditionalGeneration", "Qwen2VLConfig",
                 dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2)),
    "qwen2.5-vl": ("Qwen2_5_VLProcessor", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLConfig",
                   dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                        window_size=56, fullatt_block_indexes=[1])),
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny_vlm(request, tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    processor_class, model_class, config_class, vision = (
        getattr(transformers, n) if isinstance(n, str) else n for n in FAMILIES[request.param]
    )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    bpe.train_from_iterator(['{"subtasks": [{"name": "reach", "start": 0.0, "end": 1.5}]} task'], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=4 * 56 * 56),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT,
    )
    ids = tokenizer.convert_tokens_to_ids
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}, bos_token_id=None,
                eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"))  # fmt: skip
    vision = dict(vision, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = config_class(text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"),
                          video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
                          vision_end_token_id=ids("<|vision_end|>"))  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model_class(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def local_argv(root, model):
    return [
        "annotate",
        str(root),
        "--sparse-subtasks",
        "reach,grasp",
        "--model",
        str(model),
        "--device",
        "cpu",
    ]


def test_garbage_answers_are_retried_and_reported_and_nothing_is_written(tiny_vlm, tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ["pick the cube", "place the cube"], [20, 24])
    argv = local_argv(root, tiny_vlm)
    argv += ["--max-new-tokens", "12", "--max-retries", "1", "--out-spans", str(tmp_path / "spans.json")]
    assert main(argv) == 1
    failures = json.loads((tmp_path / "spans.json.annotate/failures.json").read_text())
    assert sorted(failures) == ["0", "1"]
    assert all("no valid answer in 2 attempt(s)" in r and "no JSON object" in r for r in failures.values())
    assert not (tmp_path / "spans.json").exists()  # never invalid spans
    assert "0 annotated, 2 failed" in capsys.readouterr().out


def test_a_retry_conversation_goes_through_the_chat_template_and_a_json_answer_is_decoded(
    tiny_vlm, monkeypatch
):
    backend = TransformersBackend(str(tiny_vlm), device="cpu", max_new_tokens=4)
    saved = json.loads((tiny_vlm / "config.json").read_text())["architectures"]
    assert [type(backend.model).__name__] == saved  # the family's own class, through the Auto classes
    frame = Frame(torch.zeros(28, 28, 3, dtype=torch.uint8).numpy(), 0.0)
    messages = [
        {"role": "system", "content": ["You segment videos."]},
        {"role": "user", "content": ["t=0.00 s", frame, "t=1.00 s", frame, "Answer."]},
        {"role": "assistant", "content": ["garbage"]},
        {"role": "user", "content": ["That answer is not valid."]},
    ]
    seen = {}
    generate = backend.model.generate

    def forced(**inputs):  # run the real model, then append a fixed answer as if it had generated it
        seen.update(inputs)
        out = generate(**inputs)
        answer = backend.processor.tokenizer('{"subtasks": [{"name": "reach", "start": 0.0, "end": 1.5}]}')
        return torch.cat([out[:, : inputs["input_ids"].shape[1]], torch.tensor([answer["input_ids"]])], dim=1)

    monkeypatch.setattr(backend.model, "generate", forced)
    assert backend.chat(messages) == '{"subtasks": [{"name": "reach", "start": 0.0, "end": 1.5}]}'
    assert seen["image_grid_thw"].shape[0] == 2 and not seen["do_sample"]  # two frames, greedy
    prompt = backend.processor.batch_decode(seen["input_ids"])[0]
    assert prompt.count("<|vision_start|>") == 2 and "<|im_start|>assistant\ngarbage" in prompt


def test_the_local_backend_annotates_when_the_model_answers_well(tiny_vlm, tmp_path, monkeypatch):
    spans = [{"name": "reach", "start": 0.0, "end": 1.5}, {"name": "grasp", "start": 1.5, "end": 2.0}]
    good = json.dumps({"subtasks": spans})
    monkeypatch.setattr(TransformersBackend, "chat", lambda self, messages: good)
    root = make_dataset(tmp_path / "ds", ["pick"], [20])
    argv = local_argv(root, tiny_vlm)
    assert main([*argv, "--out-spans", str(tmp_path / "s.json"), "--num-visualizations", "0"]) == 0
    assert read_spans(tmp_path / "s.json") == {0: [Span("reach", 0, 15), Span("grasp", 15, 19)]}
