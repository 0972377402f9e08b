# The stemsweep image: stemsweep installed from its wheel into a venv, run as an
# unprivileged user, with `stemsweep` as the entry point. configs/k8s/ runs it.
#
#   docker build -t stemsweep:0.1.0 .                              # or: podman build
#   docker build -t stemsweep:0.1.0-all --build-arg EXTRAS=all .    # plus simulator and report
#   docker run --rm stemsweep:0.1.0 models
#
# EXTRAS picks the optional parts (simulator, report, all; comma-separated). Empty, the
# default: the core alone, which is all that `run`, `retry`, `plan` and `status` against the
# API need: about 50 MB over the base, against 270 MB with `all`.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# --- build: the wheel, then a venv with it and its dependencies --------------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
WORKDIR /src
# Only what the wheel is made of (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md LICENSE ./
COPY orchestrator ./orchestrator
# The runtime venv gets no pip: the build venv's pip installs into it (--python).
RUN python3 -m venv /opt/build \
 && /opt/build/bin/python -m pip install --no-cache-dir --quiet --upgrade pip \
 && /opt/build/bin/python -m pip wheel --no-cache-dir --quiet --no-deps --wheel-dir /wheels . \
 && python3 -m venv --without-pip /opt/stemsweep \
 && wheel="$(ls /wheels/stemsweep-*.whl)" \
 && /opt/build/bin/python -m pip --python /opt/stemsweep/bin/python install \
      --no-cache-dir --quiet --no-warn-script-location "${wheel}${EXTRAS:+[$EXTRAS]}"

# --- the image: the base, the venv, a user -----------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="stemsweep" \
      org.opencontainers.image.description="Batch stem re-separation sweeps on the Youka API" \
      org.opencontainers.image.licenses="MIT"
# A numeric user, so that Kubernetes' runAsNonRoot can check it; the k8s examples run as
# 10001 too. /work is the default working folder (out/ lands there unless --out says
# otherwise); mount a volume on it, or pass --out to one.
RUN useradd --uid 10001 --user-group --home-dir /work --no-create-home \
      --shell /usr/sbin/nologin stemsweep \
 && install -d -o 10001 -g 10001 /work
COPY --from=build /opt/stemsweep /opt/stemsweep
# The venv's bytecode is compiled at install: nothing needs writing at run time, so the
# root filesystem may be read-only (as in configs/k8s/).
ENV PATH="/opt/stemsweep/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["stemsweep"]
CMD ["--help"]
