"""A small multi-language workspace with known answers, and a helper that writes any such tree."""

from __future__ import annotations

from pathlib import Path


FILES = {
    "net/retry.py": '''
import time


def retry_with_backoff(fn, attempts=5, base=0.1):
    """Call fn, retrying with exponential backoff when it raises."""
    for i in range(attempts):
        try:
            return fn()
        except Exception:
            time.sleep(base * 2 ** i)
    return fn()
''',
    "io/files.py": '''
def read_json_file(path):
    """Load a JSON document from disk."""
    import json
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class ConfigLoader:
    """Reads configuration files."""

    def load_yaml(self, path):
        import yaml
        return yaml.safe_load(open(path))
''',
    "web/app.js": '''
// Parse the query string of a URL into an object.
function parseQueryString(url) {
  const out = {};
  new URL(url).searchParams.forEach((v, k) => { out[k] = v; });
  return out;
}
''',
    "docs/guide.md": "# Install\n\nRun pip install.\n\n# ファイルを開く\n\nファイルを開くには open() を使います。\n",
}


# Three files a tiny PyLate fixture model ranks by MaxSim: "parse config json" must find config.py first.
MAXSIM_FILES = {
    "config.py": "def parse_config(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "retry.py": "def retry(request):\n    # exponential backoff when the server returns 503\n    return request\n",
    "notes.md": "# Notes\n\nThe quick brown fox jumps over the lazy dog.\n",
}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
