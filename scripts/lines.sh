# Sourced by the reproduce scripts.
lines() {  # lines FILE FROM TO OUT: lines FROM..TO of FILE into OUT, once (atomic)
  [ -f "$4" ] || { sed -n "$2,$3p" "$1" > "$4.tmp" && mv "$4.tmp" "$4"; }
}
