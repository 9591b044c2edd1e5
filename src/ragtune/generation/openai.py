"""Chat completions from any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's server,
Ollama, `ragtune serve`), on the official `openai` client, so an API model is scored on the
same prompt as a local one.

The client retries 429, 5xx, timeouts and dropped connections with exponential backoff and
honours `Retry-After`; `retries` bounds the attempts and `timeout_s` each one. What still fails
becomes a `GenerationError` that names the URL, the HTTP status and what to try.

    gen = OpenAIGenerator("gpt-4o-mini", "https://api.openai.com/v1", key, max_new_tokens=48)
    gen.generate([messages])[0].text
    for piece in gen.stream(messages): print(piece, end="")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ragtune.generation.base import Generation, GenerationError, Messages


class OpenAIGenerator:
    """Greedy (temperature 0) chat completions, one request per conversation."""

    def __init__(
        self,
        model: str,
        api_base: str,
        api_key: str | None,
        max_new_tokens: int,
        timeout_s: float = 120.0,
        retries: int = 4,
    ):
        try:
            import openai
        except ImportError:
            raise GenerationError(
                "openai:MODEL needs the openai package: pip install openai"
            ) from None
        self._openai = openai
        self.model, self.api_base = model, api_base.rstrip("/")
        self.max_new_tokens = max_new_tokens
        self.name = f"openai:{model}"
        # Local servers take any key; the client insists on one, so say "none" rather than fail.
        self.client = openai.OpenAI(
            base_url=self.api_base,
            api_key=api_key or "none",
            timeout=timeout_s,
            max_retries=retries,
        )

    def _request(self, messages: Messages, **extra: Any) -> Any:
        try:
            return self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=self.max_new_tokens,
                **extra,
            )
        except self._openai.APIStatusError as e:
            detail = " ".join(str(e.message).split())[:300]
            hint = {
                401: "check the API key (gen.api_key_env names the variable that holds it)",
                404: f"check the model name {self.model!r} and gen.api_base",
                429: "rate-limited after every retry: lower the request rate or raise gen.retries",
            }.get(e.status_code, "the server failed after every retry; see its log")
            raise GenerationError(
                f"{self.api_base}/chat/completions: HTTP {e.status_code}: {detail} ({hint})"
            ) from None
        except self._openai.APITimeoutError:
            raise GenerationError(
                f"{self.api_base}/chat/completions: timed out after every retry "
                "(raise gen.timeout_s, or check that the server is up)"
            ) from None
        except self._openai.APIConnectionError as e:
            raise GenerationError(
                f"{self.api_base}/chat/completions: cannot connect ({e.__cause__ or e}); "
                "check gen.api_base or $OPENAI_BASE_URL"
            ) from None

    def generate(
        self,
        batch: list[Messages],
        refusals: list[str] | None = None,
        spans: list[list[str]] | None = None,
    ) -> list[Generation]:
        # An API sends no logits of its prompt's answer start and takes no token mask:
        # refusals cannot be scored nor spans enforced, so the answer is the model's own
        # reply (refusal_score stays None).
        out = []
        for messages in batch:
            t0 = time.perf_counter()
            resp = self._request(messages)
            latency = time.perf_counter() - t0
            try:
                text = resp.choices[0].message.content or ""
            except (AttributeError, IndexError, TypeError):
                raise GenerationError(
                    f"{self.api_base}: unexpected response {str(resp)[:300]}"
                ) from None
            tokens = resp.usage.completion_tokens if resp.usage else 0
            prompt_tokens = resp.usage.prompt_tokens if resp.usage else 0
            out.append(
                Generation(text.strip(), int(tokens or 0), latency, 1, int(prompt_tokens or 0))
            )
        return out

    def stream(self, messages: Messages) -> Iterator[str]:
        """The answer's text as the server sends it, piece by piece."""
        for chunk in self._request(messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
