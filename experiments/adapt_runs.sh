# Sourced by experiments/adapt_*.sh: `adapt_runs DOMAIN_FILE PREFIX RUN ...` adapts zh-small
# to DOMAIN_FILE once per run into $OUT/PREFIX_RUN with the caller's ${ARGS[RUN]} (the first
# run's domain teacher file shared by the others, so the teacher embeds the domain once), then
# writes each run's general suite to $OUT/PREFIX_RUN.suite.json; a run or suite already made
# is skipped, so a rerun resumes. Needs OUT, LTD and the associative array ARGS.
adapt_runs() {
  local domain="$1" prefix="$2"
  shift 2
  local first="$1" run
  for run in "$@"; do
    mkdir -p "$OUT/work_$run"
    [ "$run" = "$first" ] || [ -e "$OUT/work_$run/domain.h5" ] ||
      ln -s "$(realpath "$OUT/work_$first")/domain.h5" "$OUT/work_$run/domain.h5"
    [ -f "$OUT/${prefix}_$run/config.json" ] ||
      $LTD adapt "$domain" -m zh-small -o "$OUT/${prefix}_$run" --work "$OUT/work_$run" \
        ${ARGS[$run]} | tee "$OUT/${prefix}_$run.log"
    # the general kinds' pair columns (adapt prints their fidelity)
    [ -s "$OUT/${prefix}_$run.suite.json" ] ||
      { $LTD eval suite -m "$OUT/${prefix}_$run" --json > "$OUT/${prefix}_$run.suite.json.partial" &&
        mv "$OUT/${prefix}_$run.suite.json.partial" "$OUT/${prefix}_$run.suite.json"; }
  done
}
