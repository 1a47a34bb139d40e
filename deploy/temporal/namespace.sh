#!/bin/sh
# The namespace rollouts run in and the search attributes they publish (plans/runtime/visibility.py),
# run by temporalio/admin-tools once the server answers (deploy/compose.production.yml,
# service temporal-setup). What exists already is left as it is.
# Needs TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE; NAMESPACE_RETENTION (default 720h, 30 days).
set -eu

tries=60
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
        echo "Temporal at $TEMPORAL_ADDRESS is not healthy" >&2
        exit 1
    fi
    sleep 2
done

operator() {
    temporal operator "$@" --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE"
}

if operator namespace describe >/dev/null 2>&1; then
    echo "namespace $TEMPORAL_NAMESPACE exists"
else
    operator namespace create --retention "${NAMESPACE_RETENTION:-720h}"
fi

registered() {
    operator search-attribute list --output json 2>/dev/null | grep -q "\"$1\""
}

# A namespace just created may refuse attributes for a few seconds: each is asked for until
# the list shows it, so a refusal is never taken for "exists".
for attribute in RolloutService:Keyword RolloutVersion:Keyword RolloutStage:Keyword \
    RolloutWeight:Int RolloutState:Keyword RolloutTarget:Keyword RolloutRelease:Keyword; do
    name=${attribute%%:*}
    tries=0
    until registered "$name"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 30 ]; then
            echo "search attribute $name could not be created on $TEMPORAL_ADDRESS" >&2
            exit 1
        fi
        operator search-attribute create --name "$name" --type "${attribute##*:}" >/dev/null 2>&1 ||
            sleep 2
    done
    echo "search attribute $name is registered"
done
