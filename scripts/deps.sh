#!/usr/bin/env bash
# Installs what this machine lacks for `make run` (mode run) or `make test`
# (mode test), and nothing when everything is there (then it takes a few
# milliseconds and prints nothing). `make run`, `make test` and .ci/run all
# come through here.
#
#   run:  redis-server
#   test: redis-server, make, Node.js with npm (the UI's unit tests, ESLint,
#         axe-core and Lighthouse for the browser tests), chromium and a
#         colour emoji font (the browser tests drive a headless Chromium and
#         screenshot the UI's 💣)
#
# Debian/Ubuntu: apt-get, as root or through sudo; `apt-get update` first
# only when something is to be installed. macOS: Homebrew, when brew is on
# the PATH (macOS has its own emoji font). Anywhere else it stops at once,
# naming what to install.
set -euo pipefail

mode=${1:-}
case $mode in
run | test) ;;
*)
  echo "usage: $0 run|test" >&2
  exit 2
  ;;
esac

# Debian's package for each missing piece.
apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || apt+=(redis-server)
if [ "$mode" = test ]; then
  have make || apt+=(make)
  have node || apt+=(nodejs)
  have npm || apt+=(npm)
  have chromium || [ -x /usr/bin/chromium ] || apt+=(chromium)
  if [ "$(uname -s)" = Linux ] && [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    apt+=(fonts-noto-color-emoji)
  fi
fi
[ ${#apt[@]} -eq 0 ] && exit 0

if have apt-get; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! have sudo; then
      echo "wisp needs: ${apt[*]} — run as root, or install sudo, or: apt-get install -y ${apt[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "installing ${apt[*]} (apt-get)…"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt[@]}" >/dev/null
  exit 0
fi

if have brew; then
  formulae=() casks=()
  for p in "${apt[@]}"; do
    case $p in
    redis-server) formulae+=(redis) ;;
    make)
      echo "wisp needs make: xcode-select --install" >&2
      exit 1
      ;;
    chromium) casks+=(chromium) ;;
    nodejs) formulae+=(node) ;;
    npm) ;; # comes with Homebrew's node
    esac
  done
  echo "installing ${formulae[*]} ${casks[*]} (Homebrew)…"
  [ ${#formulae[@]} -eq 0 ] || brew install "${formulae[@]}"
  [ ${#casks[@]} -eq 0 ] || brew install --cask "${casks[@]}"
  exit 0
fi

echo "wisp needs ${apt[*]} (Debian package names); install them with your package manager, then run make again" >&2
exit 1
