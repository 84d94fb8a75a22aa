# The image every Airflow service and the MLflow server run: Airflow 3.3.2 plus this package and
# its pinned lock (which also holds mlflow, psycopg2 and boto3).
FROM apache/airflow:3.3.2-python3.11

ENV MLOPS_HOME=/opt/mlops \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mlops/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/mlops/plugins

# /opt/mlops belongs to the airflow user: the editable install writes its metadata there, and the
# named volume mounted on /opt/mlops/.local takes this ownership when it is first created.
USER root
RUN mkdir -p /opt/mlops/.local/lake /opt/mlops/.local/landing && chown -R airflow:0 /opt/mlops
USER airflow

# The lock alone first, so a code change does not re-install every dependency.
COPY --chown=airflow:0 requirements.txt /opt/mlops/
RUN pip install --no-cache-dir -r /opt/mlops/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/mlops/
# include/compose/ holds the scripts the compose services run (secret checks, start wrappers).
COPY --chown=airflow:0 include/ /opt/mlops/include/
COPY --chown=airflow:0 plugins/ /opt/mlops/plugins/
COPY --chown=airflow:0 dags/ /opt/mlops/dags/
RUN pip install --no-cache-dir --no-deps -e /opt/mlops

# Airflow's entry point for every service; `train` with MLOPS_JOB_FOLDER set is a SageMaker
# tuning trial (include/compose/entrypoint.sh), which cannot name an entry point of its own.
ENTRYPOINT ["/opt/mlops/include/compose/entrypoint.sh"]
