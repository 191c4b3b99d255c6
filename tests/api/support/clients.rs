//! Logins, logged-in clients, and the wire values tests build and read.

use akig::proto::v1::auth_service_client::AuthServiceClient;
use akig::proto::v1::collections_service_client::CollectionsServiceClient;
use akig::proto::v1::dashboard_service_client::DashboardServiceClient;
use akig::proto::v1::geo_service_client::GeoServiceClient;
use akig::proto::v1::missions_service_client::MissionsServiceClient;
use akig::proto::v1::{Date, LoginRequest, LoginResponse, login_request::Identifier};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::app::TestApp;
use super::fixtures::PASSWORD;

/// Adds `authorization: Bearer <token>` to a request.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(token));
    request
}

fn bearer(token: &str) -> MetadataValue<Ascii> {
    format!("Bearer {token}").parse().expect("ascii token")
}

/// Sends `authorization: Bearer <token>` with every call of a client.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client whose calls carry a user's access token.
pub type LoggedIn = InterceptedService<Channel, Bearer>;

impl TestApp {
    /// An AuthService client without a token (Login, Refresh).
    pub async fn auth_client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel().await)
    }

    /// An AuthService client whose calls carry `token`, on a new connection.
    pub async fn auth_as(&self, token: &str) -> AuthServiceClient<LoggedIn> {
        AuthServiceClient::with_interceptor(self.channel().await, Bearer(bearer(token)))
    }

    /// A CollectionsService client without a token (calls send theirs with [`authed`]).
    pub async fn collections_client(&self) -> CollectionsServiceClient<Channel> {
        CollectionsServiceClient::new(self.channel().await)
    }

    /// A DashboardService client without a token (calls send theirs with [`authed`]).
    pub async fn dashboard_client(&self) -> DashboardServiceClient<Channel> {
        DashboardServiceClient::new(self.channel().await)
    }

    /// A GeoService client without a token (calls send theirs with [`authed`]).
    pub async fn geo_client(&self) -> GeoServiceClient<Channel> {
        GeoServiceClient::new(self.channel().await)
    }

    /// A MissionsService client without a token (calls send theirs with [`authed`]).
    pub async fn missions_client(&self) -> MissionsServiceClient<Channel> {
        MissionsServiceClient::new(self.channel().await)
    }

    /// A CollectionsService client whose calls carry `token`, on a new connection.
    pub async fn collections(&self, token: &str) -> CollectionsServiceClient<LoggedIn> {
        CollectionsServiceClient::with_interceptor(self.channel().await, Bearer(bearer(token)))
    }

    /// Logs in with `PASSWORD`; answers the whole response.
    pub async fn login(&self, username: &str) -> LoginResponse {
        self.try_login(username, PASSWORD)
            .await
            .unwrap_or_else(|status| panic!("login of {username}: {status:?}"))
    }

    pub async fn try_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, tonic::Status> {
        self.auth_client()
            .await
            .login(LoginRequest {
                identifier: Some(Identifier::Username(username.to_owned())),
                password: password.to_owned(),
                device: None,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The access token of a fresh login.
    pub async fn token(&self, username: &str) -> String {
        self.login(username)
            .await
            .tokens
            .expect("tokens")
            .access_token
    }
}

/// The message of a unary call's answer, or its status.
pub async fn message<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    call.await.map(tonic::Response::into_inner)
}

/// The `x-cache` metadata of a cached read ("HIT", "MISS"), or "absent".
pub fn x_cache<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("absent")
        .to_owned()
}

pub fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    akig::api::convert::timestamp(at)
}

pub fn date(day: NaiveDate) -> Date {
    Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

/// The fields named by a status's BadRequest details; none without details.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}

/// The ErrorInfo reason of a status; empty without one.
pub fn error_reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}
