"""Gemini ``models.generateContent`` request body, the parts vlgate sends, transcribed from the
google-genai SDK's types (googleapis/python-genai ``google/genai/types.py``: ``Content``,
``Part``, ``Blob``, ``FileData``, ``GenerationConfig``, ``ThinkingConfig``, ``SafetySetting``,
``MediaResolution``) in the REST API's lowerCamelCase JSON names. Unknown keys are rejected, as
the API answers them with 400 "Invalid JSON payload received. Unknown name".
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Blob(_Strict):
    mimeType: Literal["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"]
    data: str

    @field_validator("data")
    @classmethod
    def _b64(cls, v: str) -> str:
        base64.b64decode(v, validate=True)
        return v


class FileData(_Strict):
    mimeType: str | None = None
    fileUri: str


class Part(_Strict):
    text: str | None = None
    inlineData: Blob | None = None
    fileData: FileData | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Part:
        set_ = [f for f in ("text", "inlineData", "fileData") if getattr(self, f) is not None]
        assert len(set_) == 1, f"a Part holds exactly one of text/inlineData/fileData: {set_}"
        return self


class Content(_Strict):
    role: Literal["user", "model"] | None = None
    parts: list[Part] = Field(min_length=1)


class ThinkingConfig(_Strict):
    includeThoughts: bool | None = None
    thinkingBudget: int | None = None
    thinkingLevel: (
        Literal["MINIMAL", "LOW", "MEDIUM", "HIGH", "minimal", "low", "medium", "high"] | None
    ) = None


class GenerationConfig(_Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    topP: float | None = Field(default=None, ge=0, le=1)
    topK: int | None = Field(default=None, ge=1)
    candidateCount: int | None = Field(default=None, ge=1)
    maxOutputTokens: int | None = Field(default=None, ge=1)
    stopSequences: list[str] | None = Field(default=None, max_length=5)
    seed: int | None = None
    presencePenalty: float | None = None
    frequencyPenalty: float | None = None
    responseLogprobs: bool | None = None
    logprobs: int | None = None
    responseMimeType: Literal["text/plain", "application/json", "text/x.enum"] | None = None
    responseSchema: dict[str, Any] | None = None
    responseJsonSchema: dict[str, Any] | None = None
    thinkingConfig: ThinkingConfig | None = None
    mediaResolution: (
        Literal[
            "MEDIA_RESOLUTION_UNSPECIFIED",
            "MEDIA_RESOLUTION_LOW",
            "MEDIA_RESOLUTION_MEDIUM",
            "MEDIA_RESOLUTION_HIGH",
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _schema_rules(self) -> GenerationConfig:
        assert not (self.responseSchema and self.responseJsonSchema), (
            "responseSchema and responseJsonSchema are mutually exclusive"
        )
        if self.responseSchema or self.responseJsonSchema:
            assert self.responseMimeType == "application/json", "schema needs application/json"
        return self


class SafetySetting(_Strict):
    category: Literal[
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    ]
    threshold: Literal[
        "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"
    ]


class GenerateContentRequest(_Strict):
    contents: list[Content] = Field(min_length=1)
    systemInstruction: Content | None = None
    generationConfig: GenerationConfig | None = None
    safetySettings: list[SafetySetting] | None = None
    cachedContent: str | None = None
