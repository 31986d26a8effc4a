DROP TABLE email_factors;
DROP TABLE one_time_codes;
