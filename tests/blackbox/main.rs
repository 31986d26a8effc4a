//! Black-box tests: the real `twofa` binary, driven over HTTP, on SQLite and PostgreSQL.

#[path = "../support/postgres.rs"]
mod postgres;

mod harness;
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
    ucloud::admin_reset,
    ucloud::docs_and_cli,
    ucloud::graceful_shutdown,
    zstack::zstack_binding_flow,
    zstack::zstack_code_lockout,
    zstack::zstack_cross_dialect,
    zstack::zstack_query_engine,
    zstack::zstack_admin_reset,
    zstack::zstack_bad_input,
    zstack::zstack_settings,
);
