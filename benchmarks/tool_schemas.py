"""What tools/list costs the calling assistant's context, per tool profile.

Prints, nothing asserted: for lean, standard and full, the number of tools and the size
of the MCP `tools/list` result (bytes and estimated tokens, with the estimate the server
uses: a token per 4 ASCII characters); then the largest tools of the full profile.
The complaint this answers: some MCP servers spend ~30k tokens of context on schemas.

    python benchmarks/tool_schemas.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from tools_app.context_window import estimate_tokens
    from tools_app.services import tool_descriptors

    print("\ntools/list per profile      tools     bytes   est. tokens")
    for profile in ("lean", "standard", "full"):
        settings.EXAI_TOOL_PROFILE = profile
        tools = tool_descriptors()
        text = json.dumps({"tools": tools}, separators=(",", ":"))
        print(f"  {profile:<24} {len(tools):6d} {len(text.encode()):9,d} {estimate_tokens(text):12,d}")

    print("\nlargest tools (full profile)      bytes   est. tokens")
    sizes = sorted(
        ((json.dumps(tool, separators=(",", ":")), tool["name"]) for tool in tool_descriptors()),
        key=lambda pair: -len(pair[0]),
    )
    for text, name in sizes[:6]:
        print(f"  {name:<28} {len(text):8,d} {estimate_tokens(text):12,d}")


if __name__ == "__main__":
    main()
