#!/usr/bin/env bash
# The docs' recipe for re-separating a catalogue, as a shell loop: one separation at a time.
# For each project and model: POST the separation, poll the task every POLL seconds until it
# ends, read the project, pick that model's stems with jq, curl -L each one.
#
#   YOUKA_API_KEY=yk_... bench/recipe.sh API_URL OUT_DIR POLL_SECONDS "PROJECTS" "MODELS"
#
# `python -m bench recipe` runs it against the simulator and times it against stemsweep.
set -euo pipefail

api=$1 out=$2 poll=$3 projects=$4 models=$5
auth="Authorization: Bearer ${YOUKA_API_KEY:?set YOUKA_API_KEY}"

for project in $projects; do
  for model in $models; do
    task=$(curl -sSf -X POST "$api/projects/$project/tasks/stem-separation" \
      -H "$auth" -H "Content-Type: application/json" \
      -H "Idempotency-Key: restems-$project-$model" \
      -d "{\"splitModel\": \"$model\"}" | jq -r .taskId)
    while true; do
      sleep "$poll"
      status=$(curl -sSf "$api/tasks/$task" -H "$auth" | jq -r .status)
      case $status in
        completed|finalized) break ;;
        failed|cancelled|timed-out) echo "$project $model: $status" >&2; continue 2 ;;
      esac
    done
    mkdir -p "$out/$model/$project"
    curl -sSf "$api/projects/$project" -H "$auth" \
      | jq -r --arg m "$model" '.stems[] | select(.model == $m and .type != "original")
                                 | "\(.type) \(.url)"' \
      | while read -r type url; do
          curl -sSfL -o "$out/$model/$project/$type.wav" "$url"
        done
  done
done
