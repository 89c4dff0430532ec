# Alerter image: the base dependencies and the alerter extra, no model stack. Build from the repository root:
#   docker build -f deploy/docker/alerter.Dockerfile -t crisiswatch-alerter .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crisiswatch ./crisiswatch
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[alerter]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "crisiswatch[alerter]" && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin crisiswatch
USER 10001
EXPOSE 9103
ENTRYPOINT ["crisiswatch"]
CMD ["alerter", "run"]
