# Classifier image for NVIDIA GPU nodes: the CUDA build of torch (its wheels
# carry the CUDA runtime; the node provides the driver). Selected by the
# prod-gpu overlay; CLASSIFIER_DEVICE=cuda there, fp16/bf16 chosen at start-up.
#   docker build -f deploy/docker/classifier-gpu.Dockerfile -t crisiswatch-classifier-gpu .
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
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 HF_HOME=/tmp/huggingface \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 \
    && pip install --no-cache-dir "$(ls /wheels/*.whl)[classifier]" && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin crisiswatch
USER 10001
EXPOSE 9102
ENTRYPOINT ["crisiswatch"]
CMD ["classifier", "run"]
