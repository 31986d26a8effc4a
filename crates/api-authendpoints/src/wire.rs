//! AuthEndpoints' request and response shapes (reference §2 and §5). Requests are all
//! `string?` properties bound case-insensitively; responses are camelCase.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Dto, Field};

/// Declares a request DTO: each property with its C# name and whether it is
/// `[Required]` and `[EmailAddress]`.
macro_rules! dto {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $cs:literal ($required:expr, $email:expr)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(pub $field: Option<String>,)*
        }

        impl Dto for $name {
            const FIELDS: &'static [Field] = &[
                $(Field { name: $cs, required: $required, email: $email },)*
            ];
            fn from_values(values: Vec<Option<String>>) -> Self {
                let mut values = values.into_iter();
                $name { $($field: values.next().flatten(),)* }
            }
        }
    };
}

dto!(
    /// `RegisterRequest`.
    RegisterRequest {
        email: "Email" (true, true),
        username: "Username" (true, false),
        password: "Password" (true, false),
        confirm_password: "ConfirmPassword" (true, false),
    }
);

dto!(
    /// `LoginRequest`.
    LoginRequest {
        username: "Username" (true, false),
        password: "Password" (true, false),
    }
);

dto!(
    /// `RefreshRequest`.
    RefreshRequest {
        refresh_token: "RefreshToken" (true, false),
    }
);

dto!(
    /// `TwoStepVerificationConfirmRequest`, for both confirm endpoints. `provider` is
    /// `"Email"`, or `"Authenticator"` for a user with an authenticator app.
    TwoStepVerificationConfirmRequest {
        email: "Email" (true, false),
        provider: "Provider" (true, false),
        token: "Token" (true, false),
    }
);

dto!(
    /// `TwoStepVerificationLoginRequest`.
    TwoStepVerificationLoginRequest {
        username: "Username" (true, false),
        password: "Password" (true, false),
        provider: "Provider" (true, false),
    }
);

dto!(
    /// `EmailVerificationConfirmRequest`: the user id and the token from the link.
    EmailVerificationConfirmRequest {
        identity: "Identity" (true, false),
        token: "Token" (true, false),
    }
);

dto!(
    /// `SetPasswordRequest`.
    SetPasswordRequest {
        current_password: "CurrentPassword" (true, false),
        new_password: "NewPassword" (true, false),
        confirm_new_password: "ConfirmNewPassword" (true, false),
    }
);

dto!(
    /// `ResetPasswordRequest`.
    ResetPasswordRequest {
        email: "Email" (true, true),
    }
);

dto!(
    /// `ResetPasswordConfirmRequest` (`confirmNewPassword` is required but, as in the
    /// reference, not compared).
    ResetPasswordConfirmRequest {
        identity: "Identity" (true, false),
        token: "Token" (true, false),
        new_password: "NewPassword" (true, false),
        confirm_new_password: "ConfirmNewPassword" (true, false),
    }
);

/// `AuthenticatedUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// `/jwt/create` when the user must pass two-step verification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwoStepRequired {
    /// Always false.
    pub auth_success: bool,
    /// Always true.
    pub two_step_verification_required: bool,
}

/// `/users/me`: the IdentityUser properties, without the password hash, security
/// stamp or concurrency stamp the reference leaked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub id: String,
    pub user_name: String,
    pub normalized_user_name: String,
    pub email: Option<String>,
    pub normalized_email: Option<String>,
    pub email_confirmed: bool,
    pub phone_number: Option<String>,
    pub phone_number_confirmed: bool,
    pub two_factor_enabled: bool,
    pub lockout_end: Option<String>,
    pub lockout_enabled: bool,
    pub access_failed_count: i32,
}
