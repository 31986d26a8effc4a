//! Diesel table definitions; one schema for both backends (see migrations/).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        email_confirmed -> Bool,
        phone -> Nullable<Text>,
        phone_confirmed -> Bool,
        password_hash -> Nullable<Text>,
        is_admin -> Bool,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    totp_factors (id) {
        id -> Text,
        user_id -> Text,
        secret_sealed -> Binary,
        active -> Bool,
        last_step -> BigInt,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    challenges (id_hash) {
        id_hash -> Text,
        kind -> Text,
        user_id -> Text,
        factor_id -> Text,
        dialect -> Text,
        service -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used -> Bool,
    }
}

diesel::table! {
    throttles (key) {
        key -> Text,
        failures -> Integer,
        window_start -> BigInt,
        lockouts -> Integer,
        locked_until -> BigInt,
    }
}

diesel::table! {
    sessions (refresh_hash) {
        refresh_hash -> Text,
        id -> Text,
        user_id -> Text,
        dialect -> Text,
        csrf_hash -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked -> Bool,
        generation -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        user_id -> Nullable<Text>,
        username -> Nullable<Text>,
        dialect -> Text,
        ip -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    api_jobs (id_hash) {
        id_hash -> Text,
        dialect -> Text,
        result_sealed -> Binary,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::joinable!(totp_factors -> users (user_id));
diesel::joinable!(challenges -> users (user_id));
diesel::joinable!(challenges -> totp_factors (factor_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    totp_factors,
    challenges,
    throttles,
    sessions,
    audit_log,
    settings,
    api_jobs
);

diesel::table! {
    one_time_codes (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        channel -> Text,
        code_hash -> Text,
        delivered -> Bool,
        used -> Bool,
        attempts -> Integer,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    email_factors (user_id) {
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(one_time_codes -> users (user_id));
diesel::joinable!(email_factors -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, one_time_codes, email_factors);

diesel::table! {
    user_files (user_id, file_id) {
        user_id -> Text,
        file_id -> BigInt,
    }
}

diesel::table! {
    ws_keys (hash) {
        hash -> Text,
        user_id -> Text,
        file_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    sms_factors (user_id) {
        user_id -> Text,
        phone -> Text,
        provider_user_id -> BigInt,
        active -> Bool,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(user_files -> users (user_id));
diesel::joinable!(ws_keys -> users (user_id));
diesel::joinable!(sms_factors -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, user_files, ws_keys, sms_factors);
