#!/usr/bin/env bash
# The commands every CI template of include/ci/ runs, identical on every platform (docs/ci-cd.md):
# the checks (install, lint, validate, dagbag, smoke) and the DAG deploy. The templates add only the
# platform's parts: its credentials (secret store / OIDC), its image builder and the main-only gate.
# Run it from the root of a pipeline repository (dags/mlops_pipelines.py + dags/pipelines/*.yaml):
#
#   bash include/ci/check.sh install          # pip install -r requirements.txt [-r requirements-dev.txt]
#   bash include/ci/check.sh                  # lint validate dagbag smoke (the default)
#   bash include/ci/check.sh lint validate    # any subset, in the order given
#   bash include/ci/check.sh deploy           # the DAGs to $DEPLOY_TARGET (templates: main branch only)
#
#   install   the locked dependencies: requirements.txt, and requirements-dev.txt when present (ruff);
#             with `uv` on PATH through `uv pip install` (same lock, much faster), else pip
#   lint      ruff check .
#   validate  mlops-airflow validate dags/pipelines   (the messages Airflow shows as import errors)
#   dagbag    mlops-airflow dagbag dags               (every DAG file imports, as the dag-processor does)
#   smoke     airflow dags test "$MLOPS_SMOKE_DAG" "$MLOPS_SMOKE_DATE" on the embedded default
#   deploy    DEPLOY_TARGET=mwaa      aws s3 sync dags/ s3://$MWAA_BUCKET/dags/ --delete; requirements.txt
#                                     and plugins.zip (when plugins/ exists) to the bucket root and
#                                     `aws mwaa update-environment` with their versions, only when changed
#             DEPLOY_TARGET=composer  gcloud storage rsync dags/ to the environment's dagGcsPrefix
#                                     (--delete-unmatched-destination-objects); PyPI packages from
#                                     $COMPOSER_REQUIREMENTS when set
#             DEPLOY_TARGET=helm      helm upgrade --install $HELM_RELEASE apache-airflow/airflow
#                                     --reuse-values --set images.airflow.{repository,tag}=$IMAGE,$IMAGE_TAG
#             DEPLOY_TARGET=git-sync  git push --force $GIT_SYNC_REMOTE HEAD:$GIT_SYNC_BRANCH (the branch
#                                     the chart's dags.gitSync follows; nobody commits to it by hand)
#             DEPLOY_TARGET=none      nothing (a notice)
#
# Environment (all optional but the smoke pair):
#   MLOPS_SMOKE_DAG      DAG id of the smoke run, e.g. breast_cancer_training; empty: smoke skipped
#   MLOPS_SMOKE_DATE     its logical date, e.g. 2026-01-31 (required when MLOPS_SMOKE_DAG is set)
#   MLOPS_SMOKE_LANDING  sample data for the smoke, laid out <landing>/<pipeline>/<file> as the
#                        pipeline's source.uri expects under ${MLOPS_LANDING}; a folder (default
#                        tests/landing, copied into the throwaway area) or a URI used as is
#   MLOPS_CLOUDS_FILE    cloud profiles; default include/clouds.yaml of the repository, else a
#                        `local`-only profile written here (the smoke DAG should be a `cloud: local` pipeline)
#   PYTHON               the interpreter to install into (default: python, else python3, on PATH)
#   deploy: MWAA_BUCKET MWAA_ENVIRONMENT [MWAA_REQUIREMENTS=requirements.txt] | COMPOSER_ENVIRONMENT
#           COMPOSER_LOCATION [COMPOSER_REQUIREMENTS] | IMAGE [IMAGE_TAG=HEAD's sha] [HELM_RELEASE=airflow]
#           [HELM_NAMESPACE=airflow] [HELM_CHART_VERSION] (KUBECONFIG from the template) |
#           [GIT_SYNC_BRANCH=airflow-dags] [GIT_SYNC_REMOTE=origin]; credentials come from the
#           template (cloud CLIs' default chains: OIDC, the build's service account, a secret file)
#
# Every run gets its own throwaway area (mktemp; removed on exit): AIRFLOW_HOME with a fresh SQLite
# metadata DB (`airflow db migrate`), the MLflow SQLite store, the lake and the landing zone. The
# caller's MLFLOW_*/MLOPS_LAKE/... settings are dropped, so the smoke never reaches a real server.
set -euo pipefail
shopt -s inherit_errexit # a failing command inside $(...) fails the script too

repo="$(pwd -P)"
if [[ ! -d "$repo/dags" ]]; then
  echo "check.sh: run me from the root of a pipeline repository (no dags/ folder in $repo)" >&2
  exit 2
fi

notice() {
  if [[ "${GITHUB_ACTIONS:-}" == "true" ]]; then echo "::notice::$*"; else echo "notice: $*"; fi
}

step() { printf '\n==> %s\n' "$*"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/mlops-ci.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The embedded default: Airflow on SQLite, MLflow on SQLite, the lake on local disk, all in $work.
export MLOPS_HOME="$repo"                      # the lineage tag mlops.code_version = this repo's commit
export MLOPS_LOCAL_DIR="$work/local"
export MLOPS_LAKE="file://$work/local/lake"
export MLOPS_LANDING="file://$work/local/landing"
export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$repo/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$work/airflow/airflow.db"
unset MLFLOW_TRACKING_URI MLFLOW_REGISTRY_URI MLOPS_ARTIFACTS
mkdir -p "$AIRFLOW_HOME" "$work/local/lake" "$work/local/landing"

if [[ -z "${MLOPS_CLOUDS_FILE:-}" ]]; then
  if [[ -f "$repo/include/clouds.yaml" ]]; then
    export MLOPS_CLOUDS_FILE="$repo/include/clouds.yaml"
  else
    export MLOPS_CLOUDS_FILE="$work/clouds.yaml"
    cat >"$MLOPS_CLOUDS_FILE" <<'EOF'
local:
  lake: ${MLOPS_LAKE}
  landing: ${MLOPS_LANDING}
  conn_id: null
  training_backend: in_worker
  deploy_target: local
  monitoring_export: none
EOF
  fi
fi

python_bin() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  command -v python || command -v python3 || { echo "check.sh: no python on PATH" >&2; return 1; }
}

do_install() {
  local args=(-r requirements.txt) py
  [[ -f requirements.txt ]] || { echo "check.sh: no requirements.txt in $repo" >&2; return 1; }
  if [[ -f requirements-dev.txt ]]; then args+=(-r requirements-dev.txt); fi
  py="$(python_bin)"
  step "install: ${args[*]} into $py"
  if command -v uv >/dev/null 2>&1; then
    uv pip install --python "$py" "${args[@]}"
  else
    "$py" -m pip install --disable-pip-version-check "${args[@]}"
  fi
}

do_lint() {
  step "lint: ruff check ."
  command -v ruff >/dev/null 2>&1 || {
    echo "check.sh: ruff is not installed; pin it in requirements-dev.txt (e.g. ruff==0.17.6)" >&2
    return 1
  }
  ruff check .
}

do_validate() {
  step "validate: mlops-airflow validate dags/pipelines"
  mlops-airflow validate dags/pipelines
}

do_dagbag() {
  step "dagbag: mlops-airflow dagbag dags"
  mlops-airflow dagbag dags
}

do_smoke() {
  local dag="${MLOPS_SMOKE_DAG:-}" date="${MLOPS_SMOKE_DATE:-}" landing="${MLOPS_SMOKE_LANDING:-tests/landing}"
  if [[ -z "$dag" ]]; then
    notice "MLOPS_SMOKE_DAG is empty: the dags-test smoke run is skipped"
    return 0
  fi
  if [[ -z "$date" ]]; then
    echo "check.sh: MLOPS_SMOKE_DATE is empty; set the logical date of the $dag smoke run (YYYY-MM-DD)" >&2
    return 2
  fi
  if [[ "$landing" == *://* ]]; then
    export MLOPS_LANDING="$landing"
  elif [[ -d "$landing" ]]; then
    cp -R "$landing/." "$work/local/landing/"
  else
    notice "no sample data at $landing (MLOPS_SMOKE_LANDING): the smoke starts from an empty landing zone"
  fi
  step "smoke: airflow db migrate (SQLite in $AIRFLOW_HOME)"
  if ! airflow db migrate >"$work/db-migrate.log" 2>&1; then
    cat "$work/db-migrate.log" >&2
    return 1
  fi
  step "smoke: airflow dags test $dag $date"
  airflow dags test "$dag" "$date"
}

# --- deploy -------------------------------------------------------------------------------------

# MWAA reads the DAGs from s3://<bucket>/dags/ within a minute; requirements.txt and plugins.zip
# only on `update-environment` with their S3 object versions (the bucket must be versioned), which
# restarts the environment's schedulers and workers: so they are uploaded only when they changed.
mwaa_put_if_changed() { # <local file> <key>; prints "<key> <version>" when uploaded
  local file="$1" key="$2"
  if aws s3 cp "s3://$MWAA_BUCKET/$key" - >"$work/s3-$key" 2>/dev/null \
    && [[ "$(sha256sum <"$work/s3-$key")" == "$(sha256sum <"$file")" ]]; then
    echo "s3://$MWAA_BUCKET/$key unchanged" >&2
    return 0
  fi
  local version
  version="$(aws s3api put-object --bucket "$MWAA_BUCKET" --key "$key" --body "$file" --query VersionId --output text)"
  echo "$key $version"
}

deploy_mwaa() {
  : "${MWAA_BUCKET:?MWAA_BUCKET: the environment bucket name (no s3://)}"
  : "${MWAA_ENVIRONMENT:?MWAA_ENVIRONMENT: the MWAA environment name}"
  local req="${MWAA_REQUIREMENTS:-requirements.txt}" update=() key version line
  step "deploy (mwaa): aws s3 sync dags/ s3://$MWAA_BUCKET/dags/ --delete"
  aws s3 sync dags/ "s3://$MWAA_BUCKET/dags/" --delete --exclude '*__pycache__/*'
  line="$(mwaa_put_if_changed "$req" requirements.txt)"
  if [[ -n "$line" ]]; then
    read -r key version <<<"$line"
    update+=(--requirements-s3-path "$key" --requirements-s3-object-version "$version")
  fi
  if [[ -d plugins ]]; then
    # A reproducible zip (sorted entries, fixed times, no extra fields): same plugins, same bytes.
    cp -R plugins "$work/plugins"
    (
      cd "$work/plugins"
      find . -type f ! -path '*/__pycache__/*' -exec touch -t 198001010000 {} +
      find . -type f ! -path '*/__pycache__/*' | LC_ALL=C sort | zip -X -q "$work/plugins.zip" -@
    )
    line="$(mwaa_put_if_changed "$work/plugins.zip" plugins.zip)"
    if [[ -n "$line" ]]; then
      read -r key version <<<"$line"
      update+=(--plugins-s3-path "$key" --plugins-s3-object-version "$version")
    fi
  fi
  if [[ ${#update[@]} -gt 0 ]]; then
    step "deploy (mwaa): aws mwaa update-environment --name $MWAA_ENVIRONMENT ${update[*]}"
    aws mwaa update-environment --name "$MWAA_ENVIRONMENT" "${update[@]}"
  else
    echo "requirements.txt and plugins.zip unchanged: no environment update"
  fi
}

deploy_composer() {
  : "${COMPOSER_ENVIRONMENT:?COMPOSER_ENVIRONMENT: the Cloud Composer environment name}"
  : "${COMPOSER_LOCATION:?COMPOSER_LOCATION: its region, e.g. europe-west1}"
  local env_args=("$COMPOSER_ENVIRONMENT" --location "$COMPOSER_LOCATION") prefix out
  prefix="$(gcloud composer environments describe "${env_args[@]}" --format='value(config.dagGcsPrefix)')"
  [[ "$prefix" == gs://* ]] || { echo "check.sh: no dagGcsPrefix for $COMPOSER_ENVIRONMENT: got '$prefix'" >&2; return 1; }
  step "deploy (composer): gcloud storage rsync dags $prefix --recursive --delete-unmatched-destination-objects"
  # Excluded objects are neither copied nor deleted: Composer's own airflow_monitoring.py stays.
  gcloud storage rsync dags "$prefix" --recursive --delete-unmatched-destination-objects \
    --exclude='(.*/)?__pycache__/.*|airflow_monitoring\.py$'
  if [[ -n "${COMPOSER_REQUIREMENTS:-}" ]]; then
    step "deploy (composer): PyPI packages from $COMPOSER_REQUIREMENTS"
    # Composer refuses an update that changes nothing; that is not a failure of the deploy.
    if ! out="$(gcloud composer environments update "${env_args[@]}" \
      --update-pypi-packages-from-file "$COMPOSER_REQUIREMENTS" 2>&1)"; then
      grep -q "No change in configuration" <<<"$out" || { echo "$out" >&2; return 1; }
    fi
    echo "$out"
  fi
}

deploy_helm() {
  : "${IMAGE:?IMAGE: the image repository the build pushed, e.g. ghcr.io/acme/airflow-mlops}"
  local tag="${IMAGE_TAG:-}" release="${HELM_RELEASE:-airflow}" args
  [[ -n "$tag" ]] || tag="$(git rev-parse HEAD)"
  args=(upgrade --install "$release" apache-airflow/airflow --namespace "${HELM_NAMESPACE:-airflow}"
    --reuse-values --set "images.airflow.repository=$IMAGE" --set "images.airflow.tag=$tag"
    --wait --timeout "${HELM_TIMEOUT:-15m}")
  if [[ -n "${HELM_CHART_VERSION:-}" ]]; then args+=(--version "$HELM_CHART_VERSION"); fi
  step "deploy (helm): helm ${args[*]}"
  helm repo add apache-airflow https://airflow.apache.org --force-update
  helm "${args[@]}"
}

deploy_git_sync() {
  local branch="${GIT_SYNC_BRANCH:-airflow-dags}" remote="${GIT_SYNC_REMOTE:-origin}"
  step "deploy (git-sync): git push --force $remote HEAD:refs/heads/$branch"
  git push --force "$remote" "HEAD:refs/heads/$branch"
}

do_deploy() {
  case "${DEPLOY_TARGET:-none}" in
    mwaa) deploy_mwaa ;;
    composer) deploy_composer ;;
    helm) deploy_helm ;;
    git-sync) deploy_git_sync ;;
    none | "") notice "DEPLOY_TARGET is none: no DAGs deployed" ;;
    *)
      echo "check.sh: DEPLOY_TARGET '$DEPLOY_TARGET' is not one of mwaa, composer, helm, git-sync, none" >&2
      return 2
      ;;
  esac
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(lint validate dagbag smoke)
for name in "${steps[@]}"; do
  case "$name" in
    install | lint | validate | dagbag | smoke | deploy) "do_$name" ;;
    *)
      echo "check.sh: unknown step '$name' (install, lint, validate, dagbag, smoke, deploy)" >&2
      exit 2
      ;;
  esac
done
