set -e
if [ "$#" -gt 0 ]; then exec drover "$@"; fi
drover migrate
token=/tmp/dp-live/secrets/prometheus.token
if [ ! -s "$token" ]; then
  drover keys revoke prometheus 2>/dev/null || true
  drover keys create --name prometheus --scope read > "$token.new"
  mv "$token.new" "$token"
fi
