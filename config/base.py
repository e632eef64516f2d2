"""The base of every config model; its own module so area modules (config/<area>.py) can import it
without importing config.models, which imports them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Base(BaseModel):
    """camelCase keys in stack files, snake_case in Python; unknown keys are errors; immutable."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, strict=False
    )
