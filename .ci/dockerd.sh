#!/usr/bin/env bash
# Start or stop a Docker engine for the image tests on a machine that has none running.
#   .ci/dockerd.sh start   install docker.io if missing, start dockerd, wait until it answers
#   .ci/dockerd.sh stop    stop the dockerd that `start` started (an engine found running is left alone)
# The engine has no bridge network and touches no iptables: builds and containers use
# `--network host` and talk only over 127.0.0.1.
set -euo pipefail

PIDFILE=${DOCKERD_PIDFILE:-/run/sentiment-nb-dockerd.pid}
LOG=${DOCKERD_LOG:-/tmp/sentiment-nb-dockerd.log}
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
# The Makefile passes its DOCKER_APT_PACKAGES; debootstrap builds the stand-in base image.
APT_PACKAGES=${DOCKER_APT_PACKAGES:-docker.io debootstrap}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_engine() {
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && return
  echo "installing $APT_PACKAGES from Debian"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES
}

start() {
  if engine_answers; then
    echo "a Docker engine is already running: using it"
    return
  fi
  install_engine
  echo "starting dockerd (log: $LOG)"
  # setsid: the engine outlives this script and is not hit by the caller's Ctrl-C.
  $SUDO setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    --pidfile "$PIDFILE" >"$LOG" 2>&1 </dev/null &
  for _ in $(seq "$START_TIMEOUT"); do
    engine_answers && { echo "dockerd $(docker version --format '{{.Server.Version}}') is up"; return; }
    sleep 1
  done
  echo "dockerd did not answer within ${START_TIMEOUT}s; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}

stop() {
  if [ ! -s "$PIDFILE" ]; then
    echo "no dockerd started by this script is running"
    return
  fi
  local pid
  pid=$(cat "$PIDFILE")
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd ($pid) is already gone"
    $SUDO rm -f "$PIDFILE"
    return
  fi
  echo "stopping dockerd ($pid)"
  $SUDO kill -TERM "$pid"
  # dockerd stops its containers and its own containerd before it exits.
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { $SUDO rm -f "$PIDFILE"; echo "dockerd stopped"; return; }
    sleep 1
  done
  echo "dockerd ($pid) did not stop within 30s" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
