-- Run once by the postgres image on an empty data volume: the MLflow backend store lives next to
-- the Airflow metadata database (POSTGRES_DB) on the same server.
CREATE DATABASE mlflow;
