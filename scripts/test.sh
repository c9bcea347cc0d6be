#!/usr/bin/env bash
# The whole test suite, on a fresh machine: ./scripts/test.sh
#
# What it needs and how it gets it:
# - Rust (cargo): must be installed (https://rustup.rs).
# - Python 3 with venv: the lab installs the pinned moto[server] into a venv under
#   ~/.cache/pilotlight on first use (apt-get install python3 python3-venv if missing).
# - PostgreSQL for the store suite, in this order: PILOTLIGHT_TEST_DATABASE_URL if set; else a
#   throwaway cluster the tests start with initdb/pg_ctl; else a server on 127.0.0.1:5432.
#   With none of these it stops and says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pilotlight/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

die() { echo "error: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv (the lab runs moto in a venv)"
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "python3 has no venv/ensurepip: apt-get install python3-venv"

if [ -z "${PILOTLIGHT_TEST_DATABASE_URL:-}" ]; then
  have_initdb=""
  if command -v initdb >/dev/null; then have_initdb=yes; fi
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && have_initdb=yes; done
  if [ -z "$have_initdb" ]; then
    if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
      export PILOTLIGHT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
      echo "store tests: using the PostgreSQL server on 127.0.0.1:5432"
    else
      die "the store tests need PostgreSQL: apt-get install postgresql (server binaries for a throwaway cluster), or set PILOTLIGHT_TEST_DATABASE_URL=postgres://user@host:port/db"
    fi
  else
    echo "store tests: a throwaway PostgreSQL cluster (initdb/pg_ctl)"
  fi
else
  echo "store tests: PILOTLIGHT_TEST_DATABASE_URL"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the end-to-end tests run the pilotlight binary)"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --all-targets --locked
