DROP TABLE audit_log;
DROP TABLE sessions;
DROP TABLE throttles;
DROP TABLE challenges;
DROP TABLE totp_factors;
DROP TABLE users;
