#!/usr/bin/env bash
# Validate a plan, start its rollout, follow it to the end, and end with an outcome a CI
# pipeline can act on. The GitHub Actions workflow and the GitLab CI job beside this file
# both call it; it runs the same anywhere `rollout` is installed:
#
#   docs/examples/rollout-ci.sh deploy/checkout.rollout.yaml
#
# The connection is the CLI's own: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY or
# TEMPORAL_TLS_* (or a temporal.toml profile: TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), and
# ROLLOUT_TASK_QUEUE for the workers' queue. ROLLOUT_SIGNING_KEY, when set, signs the start.
#
# It exits with the code of `rollout start --follow` (docs/operating.md, "Exit codes"), so
# the job fails unless the rollout was promoted:
#   0 promoted   1 error   2 invalid-plan   3 rolled-back   4 aborted   130 interrupted
# and writes these lines to $ROLLOUT_CI_OUTPUT (default: $GITHUB_OUTPUT when GitHub Actions
# sets it), for the steps or jobs after it:
#   rollout_outcome=promoted|rolled-back|aborted|invalid-plan|error|interrupted|exit-N
#   rollout_exit_code=N
#   rollout_service=SERVICE          (once the plan is valid)
#   rollout_workflow_id=WORKFLOW_ID  (once the plan is valid)
set -uo pipefail

# A CI system sets a variable to the empty string when the secret or setting behind it is
# missing; an empty TEMPORAL_NAMESPACE or TEMPORAL_TLS_CLIENT_CERT_DATA would be taken as
# given, so empty ones are dropped and the profile or the defaults apply instead.
for name in $(compgen -e); do
    case "$name" in
        TEMPORAL_* | ROLLOUT_*) if [ -z "${!name}" ]; then unset "$name"; fi ;;
    esac
done

rollout=${ROLLOUT:-rollout}
output=${ROLLOUT_CI_OUTPUT:-${GITHUB_OUTPUT:-}}

if [ "$#" -ne 1 ]; then
    echo "usage: $0 PLAN" >&2
    exit 2
fi
plan=$1

outcome_of() {
    case "$1" in
        0) echo promoted ;;
        1) echo error ;;
        2) echo invalid-plan ;;
        3) echo rolled-back ;;
        4) echo aborted ;;
        130) echo interrupted ;;
        *) echo "exit-$1" ;;
    esac
}

record() { # KEY VALUE: one line for the steps after this one
    if [ -n "$output" ]; then
        printf '%s=%s\n' "$1" "$2" >>"$output"
    fi
}

finish() { # CODE: say how it ended, record it, exit with CODE
    local code=$1 outcome
    outcome=$(outcome_of "$code")
    record rollout_outcome "$outcome"
    record rollout_exit_code "$code"
    echo "rollout-ci: ${service:-$plan}: $outcome (exit $code)" >&2
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        printf '**%s**: %s (exit %s)\n' "${service:-$plan}" "$outcome" "$code" \
            >>"$GITHUB_STEP_SUMMARY"
    fi
    exit "$code"
}

# 1. The plan, offline: every wrong field named, exit 2. Its JSON names the service.
summary=$("$rollout" validate "$plan" --json)
code=$?
if [ "$code" -ne 0 ]; then
    # The problems, as the CLI prints them for people.
    "$rollout" validate "$plan" >&2
    finish "$code"
fi
field() { # NAME: a top-level string of the validate summary
    printf '%s' "$summary" | python3 -c \
        'import json, sys; print(json.load(sys.stdin).get(sys.argv[1]) or "")' "$1"
}
service=$(field service)
record rollout_service "$service"
record rollout_workflow_id "$(field workflow_id)"
echo "rollout-ci: $plan is valid: $service, workflow $(field workflow_id)" >&2

# 2. Start and follow. The CLI runs in the background so a cancelled job (SIGINT or
# SIGTERM) reaches it at once as Ctrl-C: it stops following, exits 130, and the rollout
# goes on in Temporal, where `rollout status` shows it and `rollout rollback` stops it.
# Job control (set -m) keeps SIGINT for it: a script's other background commands ignore it.
set -m
"$rollout" start "$plan" --follow &
child=$!
signalled=0
trap 'signalled=1; kill -INT "$child" 2>/dev/null' INT TERM
wait "$child"
code=$?
while [ "$signalled" -eq 1 ]; do # the trap cut the wait short: wait for the CLI's own end
    signalled=0
    wait "$child"
    code=$?
done
trap - INT TERM
finish "$code"
