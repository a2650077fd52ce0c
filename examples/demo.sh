#!/usr/bin/env bash
# The toolcrib tour, for real: set up (once), then register the example tools
# the way a tool-making LLM hands them over, verify them in the restricted
# sandbox, call them, watch a hostile tool get refused, and check the audit log.
# Uses a throwaway registry unless TOOLCRIB_REGISTRY is set. No Docker needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/toolcrib ] || ! .venv/bin/python -c "import toolcrib.cli" 2>/dev/null; then
  echo "setting up .venv (once)..." >&2
  python3 -m venv .venv
  .venv/bin/pip install -q -e . >&2
fi

if [ -z "${TOOLCRIB_REGISTRY:-}" ]; then
  demo_dir=$(mktemp -d)
  trap 'rm -rf "$demo_dir"' EXIT  # a throwaway registry leaves nothing behind
  export TOOLCRIB_REGISTRY="$demo_dir/demo.db"
fi
export TOOLCRIB_ACTOR="${TOOLCRIB_ACTOR:-demo}"
tc() { printf '\n$ toolcrib %s\n' "$*"; .venv/bin/toolcrib "$@"; }
expect() { # expect CODE toolcrib-args... : run, and insist on that exit code
  local want=$1; shift
  set +e; tc "$@"; local got=$?; set -e
  echo "(exit code $got)"
  [ "$got" = "$want" ] || { echo "demo: expected exit code $want, got $got" >&2; exit 1; }
}

tc init
tc add examples/word_sorting.py --tests examples/word_sorting.tests.json --generator gpt-4 --strip-top-level --meta task=word_sorting
tc add examples/dyck_completion.py --tests examples/dyck_completion.tests.json --generator gpt-4 --meta task=dyck_languages
tc add examples/remainder_search.py --tests examples/remainder_search.tests.json --generator gpt-4
tc add examples/logical_deduction.py --tests examples/logical_deduction.tests.json --generator gpt-4
tc add examples/shuffled_objects.md --tests examples/shuffled_objects.tests.json --generator gpt-4 --strip-top-level
tc add examples/days_between.py --tests examples/days_between.tests.json --generator human
tc add examples/hostile_helper.py --generator unknown-model

tc list
tc verify --all
tc show sort_words

# Models wrote most of these: a person reviews and approves them (with a signed statement) before they run.
tc review
key="$(dirname "$TOOLCRIB_REGISTRY")/reviewer_ed25519"
[ -f "$key" ] || tc key generate --out "$key"
for tool in sort_words complete_dyck find_number track_swaps; do
  tc approve "$tool" --key "$key" --note "demo: read the source, tests and evidence"
done
tc attest verify sort_words

tc call sort_words --args '{"words": ["pear", "Apple", "fig"]}'
tc call complete_dyck --arg sequence='< [ ( ['
tc call find_number --args '{"congruences": [[3, 2], [5, 3], [7, 2]]}' --json
printf 'question = "Alice, Bob and Claire swap: Alice<->Bob, then Bob<->Claire"\nans = track_swaps({"Alice": "red", "Bob": "blue", "Claire": "green"}, [("Alice", "Bob"), ("Bob", "Claire")])["Claire"]\n' > "$(dirname "$TOOLCRIB_REGISTRY")/question.py"
tc call track_swaps --snippet "$(dirname "$TOOLCRIB_REGISTRY")/question.py"

# Refusals, each with its documented exit code.
expect 2 call sort_words --args '{"words": "not a list"}'
expect 4 call word_count --args '{"text": "a b c"}'
expect 4 call word_count --args '{"text": "a b c"}' --allow-unverified
# No number is both even and odd: the search can only end at a limit, on any machine.
expect 5 call find_number --args '{"congruences": [[2, 0], [2, 1]], "upper": 1000000000000}' --limit wall=1

tc audit --limit 8
tc audit verify
checkpoint="$(dirname "$TOOLCRIB_REGISTRY")/audit.checkpoint"
printf '\n$ toolcrib audit checkpoint --key %s > %s\n' "$key" "$checkpoint"
.venv/bin/toolcrib audit checkpoint --key "$key" > "$checkpoint"
cat "$checkpoint"
tc audit verify --checkpoint "$checkpoint"
tc provenance sort_words
echo
if [ -n "${demo_dir:-}" ]; then
  echo "demo registry: $TOOLCRIB_REGISTRY (a throwaway, removed now; set TOOLCRIB_REGISTRY to keep one)"
else
  echo "demo registry: $TOOLCRIB_REGISTRY"
fi
