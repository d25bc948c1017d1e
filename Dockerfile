# Switchyard gateway. Build: docker build -t switchyard .
# Run:   docker run -p 8080:8080 -v "$PWD/policies:/etc/switchyard/policies:ro" -e OPENAI_API_KEY switchyard
# Demo:  docker run -p 8080:8080 switchyard gateway serve --demo --host 0.0.0.0
#
# Layers: the pinned dependencies (deploy/constraints.txt; its header says how to regenerate it) are
# installed first, in a layer of their own, so a change to the code reinstalls only the package itself.
# The base image is pinned to a patch release; to also pin its digest, replace the tag with
# python:3.11.14-slim-bookworm@sha256:<digest> (docker buildx imagetools inspect python:3.11.14-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY deploy/constraints.txt ./deploy/constraints.txt
RUN pip install --no-cache-dir --prefix=/install --no-deps -r deploy/constraints.txt
COPY pyproject.toml README.md LICENSE ./
# gateway/example_policies is a symlink to ../policies: the wheel ships the example policies
COPY policies ./policies
COPY gateway ./gateway
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --no-create-home switchyard
COPY policies /etc/switchyard/policies
WORKDIR /etc/switchyard
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080", "--policies", "/etc/switchyard/policies"]
