# Classifier image for NVIDIA GPU nodes: the CUDA build of torch (its wheels
# carry the CUDA runtime; the node provides the driver). Selected by the
# prod-gpu overlay; CLASSIFIER_DEVICE=cuda there, fp16/bf16 chosen at start-up.
#   docker build -f deploy/docker/classifier-gpu.Dockerfile -t crisiswatch-classifier-gpu .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crisiswatch ./crisiswatch
COPY services ./services
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
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
