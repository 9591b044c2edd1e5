"""RAG fixtures: a small document folder, a tiny sentence-transformers embedder and a tiny
cross-encoder (random 1-layer BERTs with a WordPiece vocabulary trained here), and a
Generator that replies from a script and records what it was asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.generation.base import Generation

GUIDE = """# Marlowe Station

Marlowe Station was founded by Ada Quill in 1871. It lies on the northern coast.

## Trains

Trains leave every twenty minutes. The last train departs at 23:40.

```
# a comment in code, not a heading
```
"""
HARBOR = (
    "<html><head><title>t</title><style>p {color: red}</style></head><body>"
    "<h1>Harbor</h1><p>The harbor has 12 piers.</p>"
    "<h2>Fees</h2><p>Docking costs 40 euros per night.</p></body></html>"
)
ZH = "北京大学位于北京市海淀区，创建于1898年，是中国最早的国立综合性大学。"
WORDS = (GUIDE + " harbor piers docking costs euros night fees who what where how much is the "
         "founded station trains " + ZH)  # fmt: skip


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "guide.md").write_text(GUIDE, encoding="utf-8")
    (d / "harbor.html").write_text(HARBOR, encoding="utf-8")
    (d / "sub" / "zh.txt").write_text(ZH, encoding="utf-8")
    return d


def _bert(path: Path, classifier: bool) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        [WORDS] * 4,
        trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, show_progress=False),
    )
    path.mkdir(parents=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (path / "vocab.txt").write_text("\n".join(w for w, _ in vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256, num_labels=1)  # fmt: skip
    import torch

    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg) if classifier else BertModel(cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    bert = _bert(tmp_path_factory.mktemp("bert") / "bert", classifier=False)
    st = SentenceTransformer(modules=[Transformer(str(bert)), Pooling(32, "mean")], device="cpu")
    out = tmp_path_factory.mktemp("st") / "tiny-embedder"
    st.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bert(tmp_path_factory.mktemp("ce") / "tiny-ce", classifier=True)


class ScriptedGenerator:
    """Replies `reply(messages)` to each conversation; records every batch it was given."""

    name = "scripted"

    def __init__(self, reply):  # type: ignore[no-untyped-def]
        self.reply, self.calls = reply, []

    def generate(self, batch, refusals=None, spans=None):  # type: ignore[no-untyped-def]
        self.calls.append(batch)
        return [Generation(self.reply(m), 3, 0.01, len(batch)) for m in batch]


@pytest.fixture
def scripted() -> type[ScriptedGenerator]:
    return ScriptedGenerator
