"""The README's promises hold: its webhook verification snippets verify real signatures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from router.webhooks.signature import hmac_signature

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
SECRET = "whsec-test-secret"
# A digit int() refuses, a non-ASCII signature of the right length, a v1 without a value.
# Headers a stranger can send; None is a request without the header (what headers.get returns).
HOSTILE: list[str | None] = [
    "t=\u00b2,v1=00", f"t={int(time.time())},v1=\u00e9" + "0" * 63, f"t={int(time.time())},v1", "", "t=,v1=",
    f"t={'9' * 400},v1=00", f"t={'9' * 5000},v1=00", None,
]
BODY = json.dumps({"id": "evt_1", "type": "checkout.completed", "data": {"ref": "r"}}).encode()


def snippet(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.split("## Webhooks", 1)[1], re.DOTALL)
    assert blocks, f"no {language} block in the README's webhook section"
    return str(blocks[0])


def test_python_snippet_verifies() -> None:
    namespace: dict[str, Any] = {}
    exec(snippet("python"), namespace)  # our own README
    verify = namespace["verify"]
    header = hmac_signature(SECRET, BODY, int(time.time()))
    assert verify(SECRET, BODY, header)
    assert verify(SECRET, BODY, header.replace(",", ", "))  # as docs/backend.md's: spaces after commas are fine
    assert not verify(SECRET, BODY + b" ", header)
    assert not verify("other", BODY, header)
    assert not verify(SECRET, BODY, hmac_signature(SECRET, BODY, int(time.time()) - 3600))
    for hostile in HOSTILE:
        assert not verify(SECRET, BODY, hostile)  # false, never an exception (a 500 at the merchant's)


def test_node_snippet_verifies() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node snippet cannot be run here")
    header = hmac_signature(SECRET, BODY, int(time.time()))
    stale = hmac_signature(SECRET, BODY, int(time.time()) - 3600)
    script = snippet("js") + (
        f"\nconst body = Buffer.from({json.dumps(BODY.decode())});\n"
        f"console.log(JSON.stringify([verify({json.dumps(SECRET)}, body, {json.dumps(header)}),"
        f" verify({json.dumps(SECRET)}, body, {json.dumps(header.replace(',', ', '))}),"
        f" verify('other', body, {json.dumps(header)}), verify({json.dumps(SECRET)}, body, {json.dumps(stale)}),"
        f" ...{json.dumps(HOSTILE)}.map((h) => verify({json.dumps(SECRET)}, body, h))]));\n"
    )
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [True, True, False, False] + [False] * len(HOSTILE)
