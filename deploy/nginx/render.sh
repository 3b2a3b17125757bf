#!/bin/sh
# Renders deploy/nginx/oro-inference.conf into an nginx site file: each {{NAME}} becomes the
# value of ORO_NGINX_NAME. A value may list several words separated by spaces (replicas, listen
# addresses): the line holding the placeholder is then written once per word. Writes OUTPUT
# atomically, or stdout when OUTPUT is -.
#
#   ORO_NGINX_API_SERVER_NAME=inference.example.org \
#   ORO_NGINX_GATEWAY_SERVER_NAME=gateway.inference.example.org \
#   ORO_NGINX_TLS_CERTIFICATE=/etc/letsencrypt/live/inference.example.org/fullchain.pem \
#   ORO_NGINX_TLS_CERTIFICATE_KEY=/etc/letsencrypt/live/inference.example.org/privkey.pem \
#   ORO_NGINX_API_REPLICAS="127.0.0.1:3000 127.0.0.1:3010" \
#   ORO_NGINX_GATEWAY_REPLICAS="127.0.0.1:3002 127.0.0.1:3012" \
#   deploy/nginx/render.sh /etc/nginx/sites-available/oro-inference.conf
#
# The names and the certificate have no default; the others default to the values below. The
# deployment test (server/tests/deploy) runs this script on the same template.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: ORO_NGINX_...=... $0 OUTPUT|-   (see the comment at the top of $0)" >&2
  exit 2
fi
output=$1
template="$(dirname "$0")/oro-inference.conf"

# The placeholders are singular (one replica per line); the variables name the whole list.
export ORO_NGINX_API_REPLICA="${ORO_NGINX_API_REPLICAS:-127.0.0.1:3000 127.0.0.1:3010}"
export ORO_NGINX_GATEWAY_REPLICA="${ORO_NGINX_GATEWAY_REPLICAS:-127.0.0.1:3002 127.0.0.1:3012}"
export ORO_NGINX_HTTPS_LISTEN="${ORO_NGINX_HTTPS_LISTEN:-443 [::]:443}"
export ORO_NGINX_HTTP_LISTEN="${ORO_NGINX_HTTP_LISTEN:-80 [::]:80}"
export ORO_NGINX_LOOPBACK_API_LISTEN="${ORO_NGINX_LOOPBACK_API_LISTEN:-127.0.0.1:8080}"
export ORO_NGINX_LOOPBACK_GATEWAY_LISTEN="${ORO_NGINX_LOOPBACK_GATEWAY_LISTEN:-127.0.0.1:8082}"
export ORO_NGINX_ACCESS_LOG="${ORO_NGINX_ACCESS_LOG:-/var/log/nginx/oro-inference.access.log}"
export ORO_NGINX_API_SERVER_NAME="${ORO_NGINX_API_SERVER_NAME:-}"
export ORO_NGINX_GATEWAY_SERVER_NAME="${ORO_NGINX_GATEWAY_SERVER_NAME:-}"
export ORO_NGINX_TLS_CERTIFICATE="${ORO_NGINX_TLS_CERTIFICATE:-}"
export ORO_NGINX_TLS_CERTIFICATE_KEY="${ORO_NGINX_TLS_CERTIFICATE_KEY:-}"

if [ "$output" = - ]; then
  tmp=
else
  tmp="$output.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
fi

# Plain string operations (index/substr), no regular expressions: values are paths and
# addresses, never patterns. A missing value or a second placeholder on a line is an error.
awk '
{
  start = index($0, "{{")
  if (start == 0) { print; next }
  rest = substr($0, start + 2)
  stop = index(rest, "}}")
  if (stop == 0) { printf "%s:%d: unclosed placeholder\n", FILENAME, NR > "/dev/stderr"; failed = 1; exit 1 }
  name = substr(rest, 1, stop - 1)
  before = substr($0, 1, start - 1)
  after = substr(rest, stop + 2)
  if (index(after, "{{")) { printf "%s:%d: one placeholder per line\n", FILENAME, NR > "/dev/stderr"; failed = 1; exit 1 }
  n = split(ENVIRON["ORO_NGINX_" name], words, " ")
  if (n == 0) { printf "%s:%d: set ORO_NGINX_%s\n", FILENAME, NR, name > "/dev/stderr"; failed = 1; exit 1 }
  for (i = 1; i <= n; i++) print before words[i] after
}
END { if (failed) exit 1 }
' "$template" > "${tmp:-/dev/stdout}"

if [ -n "$tmp" ]; then
  mv "$tmp" "$output"
  trap - EXIT
fi
