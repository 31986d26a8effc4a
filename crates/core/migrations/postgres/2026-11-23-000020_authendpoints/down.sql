DROP INDEX users_email_lower;
DROP TABLE email_factors;
DROP TABLE one_time_codes;
