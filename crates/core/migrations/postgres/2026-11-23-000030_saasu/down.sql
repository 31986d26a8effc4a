ALTER TABLE sessions DROP COLUMN generation;
DROP INDEX sms_factors_provider_user_id;
DROP INDEX sms_factors_active_phone;
DROP TABLE sms_factors;
DROP INDEX ws_keys_user_id;
DROP TABLE ws_keys;
DROP INDEX user_files_file_id;
DROP TABLE user_files;
