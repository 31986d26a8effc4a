DROP TABLE api_jobs;
DROP TABLE settings;
