"""Images for vision-capable models: data URLs as they are, uploaded files read into data URLs."""

from __future__ import annotations

import re
from typing import Any

from tools_app.attachments import MAX_IMAGE_BYTES, file_store
from tools_app.errors import ToolError
from tools_app.providers import ResolvedModel, available_models
from tools_app.tools.base import CallContext
from tools_app.tools.files import own_references

IMAGES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "maxItems": 8,
    "description": "Images: data URLs or ids of uploaded image files (vision models only).",
}
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")


async def image_parts(ctx: CallContext, resolved: ResolvedModel, images: list[str]) -> list[dict[str, Any]]:
    """The images as chat content parts; `invalid_arguments` naming the model when it cannot see."""
    if not resolved.spec.vision:
        seeing = ", ".join(spec.name for spec in available_models() if spec.vision) or "none configured"
        raise ToolError(
            "invalid_arguments",
            f"{resolved.spec.name} cannot read images; vision-capable models here: {seeing}.",
        )
    for url in (image for image in images if image.startswith("data:")):
        if len(url) * 3 // 4 > MAX_IMAGE_BYTES or not _DATA_URL.match(url):
            raise ToolError(
                "invalid_arguments",
                "an image data URL must be data:image/<png|jpeg|gif|webp>;base64,… "
                f"and at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB.",
            )
    ids = [image for image in images if not image.startswith("data:")]
    by_id = {str(ref.id): ref for ref in await own_references(ctx, ids)}
    parts = []
    for image in images:
        url = image if image.startswith("data:") else await file_store().image_data_url(by_id[image])
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts
