//! Black-box tests: the real `twofa` binary, driven over HTTP, on SQLite and PostgreSQL.

#[path = "../support/ports.rs"]
mod ports;
#[path = "../support/postgres.rs"]
mod postgres;

mod authendpoints;
mod clients;
mod docker;
mod hardening;
mod harness;
mod import;
mod keys;
mod lockout;
mod mail;
mod openapi;
mod operations;
mod postgres_tls;
mod saasu;
mod sms;
mod swagger_ui;
mod tools;
mod ucloud;
mod zstack;

use harness::{Backend, Server};

macro_rules! on_both_backends {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$module::$name(super::Server::start(super::Backend::Sqlite, stringify!($name)).unwrap())
            })*
        }
        mod postgres_backend {
            $(#[test]
            fn $name() {
                if let Some(server) = super::Server::start(super::Backend::Postgres, stringify!($name)) {
                    super::$module::$name(server)
                }
            })*
        }
    };
}

on_both_backends!(
    ucloud::seed_creating_credentials,
    ucloud::login_with_second_factor,
    ucloud::code_lockout,
    ucloud::password_lockout,
    ucloud::bad_input,
    ucloud::refresh_and_logout,
    ucloud::access_tokens_die_with_their_session,
    ucloud::admin_reset,
    ucloud::docs_and_cli,
    ucloud::graceful_shutdown,
    keys::keys_rotation,
    lockout::burst_of_wrong_codes,
    operations::metrics_count_a_flow,
    operations::metrics_count_lockouts,
    zstack::zstack_binding_flow,
    zstack::zstack_code_lockout,
    zstack::zstack_cross_dialect,
    zstack::zstack_query_engine,
    zstack::zstack_admin_reset,
    zstack::zstack_bad_input,
    zstack::zstack_settings,
    authendpoints::ae_outbox,
    authendpoints::ae_reset_lookups_limited,
    hardening::password_flood_is_bounded,
    saasu::saasu_outbox,
    clients::clients_ucloud_web_client,
    clients::clients_zstack_message_api,
    clients::clients_saasu_sdk,
    import::import_ucloud,
    import::import_zstack,
    import::import_authendpoints,
);

/// Scenarios with a real SMS gateway (an HTTP webhook receiver) on loopback.
macro_rules! with_sms_on_both_backends {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite_sms {
            $(#[test]
            fn $name() {
                let (s, sms) = super::saasu::start_with_sms(super::Backend::Sqlite, stringify!($name)).unwrap();
                super::$module::$name(s, sms)
            })*
        }
        mod postgres_sms {
            $(#[test]
            fn $name() {
                if let Some((s, sms)) = super::saasu::start_with_sms(super::Backend::Postgres, stringify!($name)) {
                    super::$module::$name(s, sms)
                }
            })*
        }
    };
}

with_sms_on_both_backends!(
    saasu::saasu_sms_flow,
    saasu::saasu_xml_flow,
    saasu::saasu_file_scoping,
    saasu::saasu_code_rules,
    saasu::saasu_webhook_down,
    saasu::saasu_totp_from_ucloud,
    saasu::saasu_bad_input,
);

/// Scenarios that need a real SMTP server on loopback (started per test).
macro_rules! with_mail_on_both_backends {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite_mail {
            $(#[test]
            fn $name() {
                let (s, sink) = super::authendpoints::start_with_mail(super::Backend::Sqlite, stringify!($name)).unwrap();
                super::$module::$name(s, sink)
            })*
        }
        mod postgres_mail {
            $(#[test]
            fn $name() {
                if let Some((s, sink)) = super::authendpoints::start_with_mail(super::Backend::Postgres, stringify!($name)) {
                    super::$module::$name(s, sink)
                }
            })*
        }
    };
}

with_mail_on_both_backends!(
    authendpoints::ae_email_two_step_flow,
    authendpoints::ae_code_rules,
    authendpoints::ae_bad_input,
    authendpoints::ae_authenticator_from_ucloud,
    authendpoints::ae_pending_login_guesses,
    authendpoints::ae_passwords_and_delete,
);

/// SMTP pointed at a closed port.
fn smtp_down(backend: Backend, test: &str) -> Option<Server> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let open = authendpoints::OPEN_REGISTRATION;
    Server::start_with(backend, test, &[open, ("TWOFA_SMTP_URL", &url)])
}

#[test]
fn sqlite_ae_smtp_down() {
    authendpoints::ae_smtp_down(smtp_down(Backend::Sqlite, "ae_smtp_down").unwrap())
}

#[test]
fn postgres_ae_smtp_down() {
    if let Some(s) = smtp_down(Backend::Postgres, "ae_smtp_down") {
        authendpoints::ae_smtp_down(s)
    }
}

#[test]
fn sqlite_ae_credentials_need_starttls() {
    authendpoints::ae_credentials_need_starttls(Backend::Sqlite)
}

#[test]
fn postgres_ae_credentials_need_starttls() {
    authendpoints::ae_credentials_need_starttls(Backend::Postgres)
}

/// Two instances on one PostgreSQL database hold one lockout (SQLite is one process's).
#[test]
fn postgres_lockout_on_two_instances() {
    if let Some(s) = Server::start(Backend::Postgres, "lockout_on_two_instances") {
        lockout::burst_on_two_instances(s)
    }
}

/// schemathesis over each dialect's document, on SQLite (the documents do not depend on
/// the backend).
mod sqlite_schemathesis {
    use super::{openapi, Backend, Server};

    #[test]
    fn ucloud() {
        openapi::schemathesis_ucloud(Server::start(Backend::Sqlite, "st_ucloud").unwrap())
    }

    #[test]
    fn zstack() {
        openapi::schemathesis_zstack(Server::start(Backend::Sqlite, "st_zstack").unwrap())
    }

    #[test]
    fn authendpoints() {
        openapi::schemathesis_authendpoints(Server::start(Backend::Sqlite, "st_ae").unwrap())
    }

    #[test]
    fn saasu() {
        openapi::schemathesis_saasu(Server::start(Backend::Sqlite, "st_saasu").unwrap())
    }
}

#[test]
fn sqlite_swagger_ui_try_it_out() {
    swagger_ui::swagger_ui_try_it_out(Server::start(Backend::Sqlite, "swagger_ui").unwrap())
}

#[test]
fn sqlite_docker_image_and_compose() {
    docker::docker_image_and_compose(Server::start(Backend::Sqlite, "docker").unwrap())
}

#[test]
fn sqlite_metrics_on_their_own_address() {
    operations::metrics_on_their_own_address(Backend::Sqlite)
}

#[test]
fn sqlite_logs_keep_secrets() {
    operations::logs_keep_secrets(Backend::Sqlite)
}

#[test]
fn postgres_logs_keep_secrets() {
    operations::logs_keep_secrets(Backend::Postgres)
}
