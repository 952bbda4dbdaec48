#!/usr/bin/env bash
# Stage the Lambda function's code into deploy/sam/build/ for `sam build`: the core package,
# the handler and the function's own requirements (no Streamlit, FastAPI or uvicorn).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rm -rf "$here/build"
mkdir -p "$here/build"
cp -R "$root/opsforge_core" "$here/build/opsforge_core"
find "$here/build" -name __pycache__ -type d -prune -exec rm -rf {} +
cp "$here/lambda_handler.py" "$here/requirements.txt" "$here/build/"
echo "staged $here/build; next: sam build -t $here/template.yaml && sam deploy --guided"
