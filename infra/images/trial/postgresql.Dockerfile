# PostgreSQL for the chart's bundled database on clusters that cannot pull Docker Hub's postgres image (this
# machine): Debian's postgresql-15 on the project's base image, with the same contract as the official image's
# entrypoint where the chart uses it: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA.
ARG BASE_IMAGE=spaces/base-debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY postgresql-entrypoint.sh /usr/local/bin/entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
USER postgres
ENTRYPOINT ["/usr/local/bin/entrypoint"]
