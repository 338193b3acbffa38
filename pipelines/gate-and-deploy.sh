#!/usr/bin/env bash
# The deployment step both CI templates run: build the solution image, put it through Airlock's gate,
# and push it to the deployment registry only when the gate passes it.
#
#   pipelines/gate-and-deploy.sh CONTEXT_DIR IMAGE_NAME TAG ENVIRONMENT DEPLOY_REGISTRY
#
# Environment: AIRLOCK_REPORT_DIR (default ./airlock-report) receives gate.sarif, gate.json and the
# CycloneDX SBOM gate.cdx.json; AIRLOCK_SERVER + AIRLOCK_TOKEN (cicd-process) make the gate use
# approved exceptions, read allowed base images through Airlock (a runner that reaches nothing else
# still checks its base) and report to the server; AIRLOCK_GATE_DB / AIRLOCK_ALLOWLISTS / AIRLOCK_TRIVY
# as in the README; AIRLOCK_GATE="airlock-gate" (the command). Exit: 0 deployed; 1 blocked by the
# gate (image discarded); 2 the gate could not decide (not deployed); 3 bad usage or build failure.
set -uo pipefail

if [[ $# -ne 5 ]]; then
    echo "usage: $0 CONTEXT_DIR IMAGE_NAME TAG ENVIRONMENT DEPLOY_REGISTRY" >&2
    exit 3
fi
context="$1" name="$2" tag="$3" environment="$4" registry="$5"
reports="${AIRLOCK_REPORT_DIR:-airlock-report}"
gate="${AIRLOCK_GATE:-airlock-gate}"
image="$name:$tag"

annotate() {  # a message the CI system shows on the run's summary page (level: error or notice)
    local level="$1" text="$2"
    if [[ "${GITHUB_ACTIONS:-}" == true ]]; then echo "::$level title=Airlock gate::$text"
    elif [[ "${TF_BUILD:-}" == True || "${TF_BUILD:-}" == true ]]; then
        # logissue knows only error and warning: a notice is a highlighted line of the log.
        if [[ "$level" == error ]]; then echo "##vso[task.logissue type=error]Airlock gate: $text"; else echo "##[section]Airlock gate: $text"; fi
    else echo "$level: $text" >&2; fi
}

echo "==> building $image from $context"
if ! docker build -q -t "$image" "$context"; then
    annotate error "docker build of $image failed; nothing was scanned or deployed"
    exit 3
fi

mkdir -p "$reports"
echo "==> gate: $image for $environment"
"$gate" scan "$image" --env "$environment" --format table --report "$reports/gate.sarif" --report "$reports/gate.json"
status=$?
case $status in
    0)
        echo "==> deploying $image to $registry"
        docker tag "$image" "$registry/$image" && docker push "$registry/$image" || { annotate error "push to $registry failed"; exit 3; }
        annotate notice "$image passed the $environment gate and was deployed to $registry/$image"
        ;;
    1)
        annotate error "$image was blocked by the $environment gate and discarded: see $reports/gate.json (or the SARIF in code scanning)"
        ;;
    *)
        annotate error "the gate could not decide on $image (exit $status); it was not deployed: see the log above"
        status=2
        ;;
esac
exit $status
