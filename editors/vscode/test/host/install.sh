#!/bin/sh
# Installs the pinned code-server (a VS Code build, see package.json) and playwright-core without any network
# access beyond the npm registry. code-server's own postinstall cannot run offline: its VS Code part pins
# @vscode/proxy-agent to a GitHub tarball and @vscode/ripgrep downloads a binary from GitHub. So the packages
# are installed with scripts off, the GitHub pin is pointed at the identical registry tarball (same integrity
# hash), and only the native modules a server session loads are built from source.
# Needs: node 20, npm, a C/C++ toolchain (make, g++, python3) for node-gyp. Idempotent: a stamp file marks success.
set -eu
cd "$(dirname "$0")"
STAMP=node_modules/.sg-host-installed
if [ -f "$STAMP" ]; then exit 0; fi

# npm 11 runs no install scripts unless allowed; the ones needed are run by hand below.
npm ci --ignore-scripts --no-audit --no-fund
npm rebuild argon2 --build-from-source   # code-server imports it at start-up (password hashing)

VS=node_modules/code-server/lib/vscode
# Same package, same integrity hash, served by the registry instead of github.com.
sed -i 's#git+ssh://git@github.com/microsoft/vscode-proxy-agent.git\#0803e0a7d1249bcb64ae9d256d0ee732b7246ea5#https://registry.npmjs.org/@vscode/proxy-agent/-/proxy-agent-0.27.0.tgz#' \
  "$VS/npm-shrinkwrap.json"
(
  cd "$VS"
  npm install --omit=dev --ignore-scripts --no-audit --no-fund
  # The native modules the server and extension host load. Not kerberos (needs krb5 headers; only for proxy
  # auth), not ripgrep (its postinstall downloads from GitHub; only the Search view uses it).
  npm rebuild @vscode/spdlog @parcel/watcher native-watchdog node-pty
  # What code-server's postinstall.sh does after its npm install.
  rm -rf node_modules.asar && ln -s node_modules node_modules.asar
  (cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
  (cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)
)
node node_modules/code-server/out/node/entry.js --config /dev/null --version
touch "$STAMP"
