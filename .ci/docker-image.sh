#!/usr/bin/env bash
# Build the Docker image, and test it with real containers, on any machine of the project's kind.
#   .ci/docker-image.sh build [IMAGE]   engine (started if none answers) + base image + `docker build`
#   .ci/docker-image.sh test [IMAGE]    the same, then tests/test_docker_image.py against the image;
#                                       containers it started are removed, an engine it started is stopped
# IMAGE defaults to sentiment-nb, the README's tag. Builds use the host's network: the engine here has
# no bridge network (see .ci/dockerd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION=${1:?usage: $0 build|test [IMAGE]}
IMAGE=${2:-sentiment-nb}
TEST_LABEL=sentiment-nb-test  # tests/test_docker_image.py labels its containers with it
TEST_TIMEOUT=${DOCKER_TEST_TIMEOUT:-600}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

remove_test_containers() {
  local ids
  ids=$(docker ps --all --quiet --filter "label=$TEST_LABEL" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm --force --volumes $ids >/dev/null
}

build() {
  bash .ci/docker-standin-base.sh
  local began=$SECONDS
  docker build --network host --tag "$IMAGE" .
  echo "built $IMAGE in $((SECONDS - began)) s"
}

case "$ACTION" in
  build)
    engine_answers || { bash .ci/dockerd.sh start; echo "the engine stays up for docker run; stop it with: .ci/dockerd.sh stop"; }
    build
    ;;
  test)
    if ! engine_answers; then
      bash .ci/dockerd.sh start
      trap 'remove_test_containers; bash .ci/dockerd.sh stop' EXIT
    else
      trap remove_test_containers EXIT
    fi
    remove_test_containers  # leftovers of an interrupted earlier run
    build
    SENTIMENT_NB_IMAGE=$IMAGE timeout "$TEST_TIMEOUT" .venv/bin/pytest -v -s tests/test_docker_image.py
    ;;
  *) echo "usage: $0 build|test [IMAGE]" >&2; exit 2 ;;
esac
