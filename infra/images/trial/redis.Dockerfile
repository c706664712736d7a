# Redis for the chart's bundled Redis where Docker Hub cannot be reached: Debian's redis-server on the base image.
ARG BASE_IMAGE=spaces/base-debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
CMD ["redis-server", "--protected-mode", "no"]
