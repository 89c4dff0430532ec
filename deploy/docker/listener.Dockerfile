# Listener image: the base dependencies and the listener extra, no model stack. Build from the repository root:
#   docker build -f deploy/docker/listener.Dockerfile -t crisiswatch-listener .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crisiswatch ./crisiswatch
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[listener]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "crisiswatch[listener]" && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin crisiswatch
USER 10001
EXPOSE 8080 9101
ENTRYPOINT ["crisiswatch"]
CMD ["listener", "serve"]
