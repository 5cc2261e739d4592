"""Anthropic ``messages.create`` body, the parts vlgate sends, transcribed from the Anthropic
Python SDK's request types (anthropics/anthropic-sdk-python ``types/message_create_params.py``,
``image_block_param.py``, ``base64_image_source_param.py``, ``url_image_source_param.py``,
``text_block_param.py``, ``thinking_config_*_param.py``, ``output_config_param.py``,
``json_output_format_param.py``, ``metadata_param.py``). Unknown keys are rejected, as the API
answers them with 400 "Extra inputs are not permitted".
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextBlock(_Strict):
    type: Literal["text"]
    text: str = Field(min_length=1)


class Base64Source(_Strict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str

    @field_validator("data")
    @classmethod
    def _b64(cls, v: str) -> str:
        base64.b64decode(v, validate=True)
        return v


class URLSource(_Strict):
    type: Literal["url"]
    url: str


class ImageBlock(_Strict):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


Block = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class MessageParam(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ThinkingEnabled(_Strict):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1024)
    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(_Strict):
    type: Literal["disabled"]


class ThinkingAdaptive(_Strict):
    type: Literal["adaptive"]
    display: Literal["summarized", "omitted"] | None = None


Thinking = Annotated[
    ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive, Field(discriminator="type")
]


class JSONOutputFormat(_Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Strict):
    format: JSONOutputFormat | None = None
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None


class Metadata(_Strict):
    user_id: str | None = None


class MessageCreateParams(_Strict):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    stream: bool | None = None

    @model_validator(mode="after")
    def _budget_below_max_tokens(self) -> MessageCreateParams:
        if isinstance(self.thinking, ThinkingEnabled):
            assert self.thinking.budget_tokens < self.max_tokens, "budget_tokens >= max_tokens"
        return self
