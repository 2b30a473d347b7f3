# syntax=docker/dockerfile:1
# Airflow image for the feedbackloop project: the official Airflow 3.3.2 image plus the exact
# pins of requirements.txt/constraints.txt and the `feedbackloop` package (include/).
# docker-compose.yaml builds it; the project folders are also baked in so the image runs
# without bind mounts (Kubernetes, a registry), while compose mounts them over for live edits.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_BASE_IMAGE}

# The official image installs Python packages as the `airflow` user (root pip is refused).
USER airflow
WORKDIR /opt/airflow

# Dependencies first, in their own layer, so code edits do not reinstall them. requirements.txt
# pins apache-airflow itself, which stops pip from up- or downgrading Airflow by accident.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt -c /opt/airflow/constraints.txt

# The package, editable so the include/ bind mount of docker-compose.yaml is the code that runs.
# README.m[d] copies README.md when present (pyproject.toml names it) without failing otherwise.
COPY --chown=airflow:0 pyproject.toml README.m[d] /opt/airflow/
COPY --chown=airflow:0 include/ /opt/airflow/include/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 golden_set/ /opt/airflow/golden_set/
COPY --chown=airflow:0 expectations/ /opt/airflow/expectations/

# Named volumes start with the ownership of these directories; group 0 write access lets any
# AIRFLOW_UID (always run with gid 0) write logs and the auth file.
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth \
    && chmod g+rwx /opt/airflow/logs /opt/airflow/auth

ENV FEEDBACKLOOP_GOLDEN_DIR=/opt/airflow/golden_set \
    FEEDBACKLOOP_EXPECTATIONS_DIR=/opt/airflow/expectations \
    GX_ANALYTICS_ENABLED=false
